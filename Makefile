# `make pipeline` and `make test` set everything up themselves (a virtualenv in .venv) and then run.
VENV := .venv
# Stage commands call `python`: make it the virtualenv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup pipeline test verify docs
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	$(VENV)/bin/pip install --no-deps -e .
	touch $@

pipeline: setup
	dvc repro

# A worker a core, one thread each (OMP_NUM_THREADS=1 reaches the stages the tests start too).
test: setup
	OMP_NUM_THREADS=1 pytest -n auto --durations=15  # the slowest tests listed at the end: where CI time goes

# Your run's metrics against the committed ones, within the variation study's tolerances (docs/reproducibility.md).
verify: setup
	vaepipe-verify

# The generated tables of README.md and docs/ (stages, parameters, results, --help).
docs: setup
	python docs/build.py

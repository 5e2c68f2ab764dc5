"""dvc.yaml is the architecture diagram: it must list exactly what each stage uses, or DVC's caching lies."""

import json
import subprocess
import sys

import pytest
import yaml

from vaepipe.params import valid_keys
from conftest import REPO_ROOT

STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]

IMPORTED_MODULES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("stage_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("vaepipe."))))
"""


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_list_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    script = f"stages/{name}.py"
    assert stage["cmd"] == f"python {script}"
    out = subprocess.run([sys.executable, "-c", IMPORTED_MODULES, str(REPO_ROOT / script)],
                         capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    imported = {f"src/{m.replace('.', '/')}.py" for m in json.loads(out)}
    listed = {d for d in stage["deps"] if d.startswith("src/")}
    assert listed == imported
    assert script in stage["deps"]


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"check_params"}))
def test_stage_params_are_real_keys(name):
    keys = set(valid_keys())
    assert set(STAGES[name].get("params", [])) <= keys


def test_check_params_tracks_the_whole_file_and_writes_nothing():
    # `params.yaml:` with no key list: DVC then tracks every key, unknown ones included.
    assert STAGES["check_params"]["params"] == [{"params.yaml": None}]
    assert "outs" not in STAGES["check_params"]

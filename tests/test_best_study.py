"""The best-configuration study's scripts on real MNIST with tiny candidates, in a scratch tree beside the tiny run."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from vaepipe.core.runtime import COMPILE_ENV

STUDY_FILES = ("candidate.py", "summarize.py", "best_params.py")


def run(script, *args):
    """Compiled, as the tiny run is (VAEPIPE_COMPILE=always), so a candidate without overrides makes its bytes."""
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH="", **{COMPILE_ENV: "always"}))


@pytest.mark.slow
def test_candidates_train_as_the_pipeline_and_the_choice_is_made_on_validation(tiny_run, mnist_raw, tmp_path):
    study = tmp_path / "studies/best"
    study.mkdir(parents=True)
    for name in STUDY_FILES:
        shutil.copy2(REPO_ROOT / "studies/best" / name, study / name)
    (tmp_path / "src").symlink_to(REPO_ROOT / "src")
    shutil.copytree(mnist_raw, tmp_path / "data/raw", copy_function=os.link)
    shutil.copy2(tiny_run / "params.yaml", tmp_path / "params.yaml")  # the tiny run's train stage made its model
    candidates = {"as-pipeline": [], "mog": ["train.prior=mog", "train.prior_components=3", "train.epochs=2"]}
    (study / "params.yaml").write_text(yaml.safe_dump({"val_k": 3, "test_k": 4, "candidates": candidates}))

    for name in candidates:
        result = run(study / "candidate.py", name)
        assert result.returncode == 0, result.stderr
    # No overrides: the train stage's own model, byte for byte, so `dvc exp run -S ...` reproduces any candidate.
    assert (study / "models/as-pipeline.safetensors").read_bytes() == (tiny_run / "models/vae.safetensors").read_bytes()
    results = {name: json.loads((study / f"results/{name}.json").read_text()) for name in candidates}
    assert results["mog"]["overrides"] == candidates["mog"] and results["mog"]["epochs"] == 2
    for r in results.values():
        assert r["test_k"] == 4 and r["val_k"] == 3
        assert r["val_nll"] < r["val_neg_elbo"] and r["test_nll"] < r["test_neg_elbo"]  # the IS bound is tighter
        assert r["active_units"] in range(4 + 1)  # of latent_dim 4
    assert json.loads((study / "timings/mog.json").read_text())["train_seconds"] > 0
    assert not list((tmp_path / "checkpoints/best").glob("*.safetensors"))  # removed once the results are written

    summary = run(study / "summarize.py")
    assert summary.returncode == 0, summary.stderr
    chosen = min(results, key=lambda name: results[name]["val_nll"])
    metrics = json.loads((study / "metrics.json").read_text())
    assert metrics["chosen"] == chosen and metrics["chosen_test_nll"] == results[chosen]["test_nll"]
    command = " ".join(["dvc exp run", *(f"-S {o}" for o in candidates[chosen]), "-S evaluate.k=4"])
    assert command in (study / "table.md").read_text()

    bad = run(study / "candidate.py", "vamp")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: usage: candidate.py NAME, one of as-pipeline, mog (got vamp)"
    (study / "params.yaml").write_text(yaml.safe_dump({"val_k": 3, "test_k": 4, "candidates": {"x": ["train.prio=mog"]}}))
    bad = run(study / "candidate.py", "x")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: params.yaml: `train.prio` is not a known parameter; did you mean `train.prior`?"

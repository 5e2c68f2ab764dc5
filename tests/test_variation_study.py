"""The variation study's tolerances, on made-up runs whose spread is known; its settings' one-line errors; and the
committed run checked against itself (`vaepipe-verify` on a fresh clone)."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT, run_command
from vaepipe.core.errors import ParamsError
from vaepipe.core.params import load_params, parse_params
from vaepipe.core.verify import main as verify

STUDY = REPO_ROOT / "studies/variation"
sys.path.insert(0, str(STUDY))
from variation_params import VariationParams  # noqa: E402


def test_tolerance_is_three_root_two_pooled_sds_plus_the_precision_effect(tmp_path):
    study = tmp_path / "studies/variation"
    study.mkdir(parents=True)
    for name in ("summarize.py", "variation_params.py"):
        shutil.copy2(STUDY / name, study / name)
    (tmp_path / "src").symlink_to(REPO_ROOT / "src")
    (study / "params.yaml").write_text(yaml.safe_dump({
        "seeds": [1, 2, 3], "precisions": ["fp32", "bf16"], "sd_multiple": 3.0,
        "metrics": {"metrics/evaluate.json": ["test_nll"], "metrics/lossy.json": ["steps.0.accuracy"]}}))
    nll = {"fp32": [90.0, 90.2, 90.4], "bf16": [90.5, 90.6, 90.7]}  # sds 0.2 and 0.1, means 90.2 and 90.6
    for precision, values in nll.items():
        for seed, value in zip((1, 2, 3), values):
            (study / "results").mkdir(exist_ok=True)
            (study / f"results/{seed}-{precision}.json").write_text(json.dumps({
                "stage_seconds": {"train": 10.0 * seed}, "metrics": {
                    "metrics/evaluate.json": {"test_nll": value},
                    "metrics/lossy.json": {"steps": [{"accuracy": 0.97}]},
                    "metrics/train/metrics.json": {"run": {"device": "cpu", "hardware": "AVX2", "torch": "2.14.1"}}}}))
    result = subprocess.run([sys.executable, str(study / "summarize.py")], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=""))
    assert result.returncode == 0, result.stderr
    tolerances = json.loads((study / "tolerances.json").read_text())
    entry = tolerances["metrics"]["metrics/evaluate.json"]["test_nll"]
    pooled = math.sqrt((0.2 ** 2 + 0.1 ** 2) / 2)
    assert entry["tolerance"] == pytest.approx(3 * math.sqrt(2) * pooled + 0.4)
    assert entry["precision_effect"] == pytest.approx(0.4) and entry["sd"]["fp32"] == pytest.approx(0.2)
    assert tolerances["metrics"]["metrics/lossy.json"]["steps.0.accuracy"]["tolerance"] == 0
    assert tolerances["stage_seconds"] == {"fp32": {"train": 20.0}, "bf16": {"train": 20.0}}
    assert tolerances["machine"] == {"device": "cpu", "hardware": "AVX2", "torch": "2.14.1"}

    (study / "results/3-bf16.json").unlink()
    missing = subprocess.run([sys.executable, str(study / "summarize.py")], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("error: results/3-bf16.json is missing: run "
                                      "`dvc repro studies/variation/dvc.yaml`")


@pytest.mark.parametrize("change, message", [
    ({"seeds": [1]}, "`seeds` must be at least 2 distinct seeds"),
    ({"seeds": [0, 1]}, "`seeds` must be >= 1"),
    ({"precisions": ["fp16"]}, "`precisions[0]` must be one of"),
    ({"sd_multiple": 0}, "`sd_multiple` must be > 0"),
    ({"metrics": {"evaluate.json": ["test_nll"]}}, "`metrics.evaluate.json` must be a metrics/*.json file"),
])
def test_bad_settings_are_one_line_errors(change, message):
    raw = {**yaml.safe_load((STUDY / "params.yaml").read_text()), **change}
    with pytest.raises(ParamsError, match=r"^params\.yaml: " + message.replace("[", r"\[").replace("]", r"\]")
                       .replace("*", r"\*").replace(".", r"\.")):
        parse_params(raw, VariationParams)
    assert load_params(STUDY / "params.yaml", VariationParams).sd_multiple == 3.0


def test_the_committed_run_is_within_the_committed_tolerances(capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    code, out, _ = run_command(capsys, verify, "--against", "HEAD")
    assert code == 0 and out[-1].startswith("all ") and out[-1].endswith(" metrics within their tolerance"), out
    assert out[0].startswith("committed (HEAD): cpu ")

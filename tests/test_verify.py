"""`vaepipe-verify` and the provenance beside every run's metrics: a run's numbers against the committed ones, under
the variation study's tolerances, with the hardware and precision of each side named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_command, run_ok
from vaepipe.core.cli import EXIT_USER_ERROR
from vaepipe.core.runtime import cpu_class, has_fast_bf16, provenance
from vaepipe.core.verify import EXIT_MISS, main, value

CPU = torch.device("cpu")
RUN = {"device": "cpu", "hardware": "AMX", "torch": "2.14.1", "precision": "bf16"}
COMMITTED = {
    "metrics/evaluate.json": {"test_nll": 90.02, "k": 1000, "run": RUN},
    "metrics/lossy.json": {"steps": [{"setting": 0.75, "bytes_per_image": 6.04}],
                           "run": {k: v for k, v in RUN.items() if k != "precision"}},
}
TOLERANCES = {"metrics": {"metrics/evaluate.json": {"test_nll": {"tolerance": 0.4}, "k": {"tolerance": 0.0}},
                          "metrics/lossy.json": {"steps.0.bytes_per_image": {"tolerance": 0.3}}}}


def test_provenance_names_the_device_its_cpu_class_torch_and_the_resolved_precision():
    assert provenance(CPU) == {"device": "cpu", "hardware": cpu_class(), "torch": torch.__version__}
    assert provenance(CPU, "fp32")["precision"] == "fp32"
    assert provenance(CPU, "auto")["precision"] == ("bf16" if has_fast_bf16(CPU) else "fp32")
    assert cpu_class() in ("AMX", "AVX-512", "AVX2", "DEFAULT", "VSX", "ZVECTOR", "SVE256", "SVE")


def test_the_cpu_class_is_the_one_torch_s_kernels_run_on():
    """ATEN_CPU_CAPABILITY=avx2, which limits torch's kernels to AVX2 on a bigger CPU, makes it AVX2."""
    code = "from vaepipe.core.runtime import cpu_class; print(cpu_class())"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert found.strip() == "AVX2"


def test_value_reads_dotted_keys_and_list_items():
    metrics = COMMITTED["metrics/lossy.json"]
    assert value(metrics, "steps.0.bytes_per_image") == 6.04
    assert all(value(metrics, key) != value(metrics, key) for key in ("steps.1.bytes_per_image", "run.hardware",
                                                                       "steps.x", "absent"))  # NaN: nothing there


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A git and DVC repository with committed metrics and tolerances, made the current directory."""
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    for file, content in COMMITTED.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(json.dumps(content))
    (tmp_path / "tolerances.json").write_text(json.dumps(TOLERANCES))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "run"]):
        run_ok(command, tmp_path, env)
    monkeypatch.chdir(tmp_path)
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    return tmp_path


def doctor(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_the_committed_run_passes_and_a_run_within_tolerance_too(project, capsys):
    code, out, _ = run_command(capsys, main, "--tolerances", "tolerances.json")
    assert code == 0 and out[-1] == "all 3 metrics within their tolerance"
    assert out[0] == "committed (HEAD): cpu AMX, torch 2.14.1; precision: evaluate bf16"
    doctor(project / "metrics/evaluate.json", test_nll=90.4, run={**RUN, "hardware": "AVX2", "precision": "fp32"})
    code, out, _ = run_command(capsys, main, "--tolerances", "tolerances.json")
    assert code == 0 and out[1] == "yours (workspace): cpu AVX2, torch 2.14.1; precision: evaluate fp32"


def test_a_doctored_metric_fails_with_a_table_naming_it(project, capsys):
    doctor(project / "metrics/evaluate.json", test_nll=90.5)
    code, out, _ = run_command(capsys, main, "--tolerances", "tolerances.json")
    assert code == EXIT_MISS and out[-1] == "1 of 3 metrics outside their tolerance"
    assert out[2].split() == ["metric", "committed", "yours", "tolerance", "verdict"]
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in out[3:-1]}
    assert rows["evaluate: test_nll"] == ["90.02", "90.5", "0.4", "MISS"]
    assert rows["evaluate: k"] == ["1000", "1000", "0", "ok"]
    assert rows["lossy: steps.0.bytes_per_image"] == ["6.04", "6.04", "0.3", "ok"]


def test_a_metric_missing_from_the_run_is_a_miss(project, capsys):
    (project / "metrics/lossy.json").unlink()
    code, out, _ = run_command(capsys, main, "--tolerances", "tolerances.json")
    rows = [" ".join(line.split()) for line in out]
    assert code == EXIT_MISS and "lossy: steps.0.bytes_per_image 6.04 NaN 0.3 MISS" in rows


def test_an_experiment_is_checked_against_the_commit(project, capsys):
    (project / "params.yaml").write_text("nll: 90.02\n")
    (project / "evaluate.py").write_text(
        "import json, yaml\nnll = yaml.safe_load(open('params.yaml'))['nll']\n"
        "json.dump({'test_nll': nll, 'k': 1000}, open('metrics/evaluate.json', 'w'))\n")
    (project / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: python evaluate.py\n    deps: [evaluate.py]\n"
                                      "    params: [nll]\n    metrics:\n      - metrics/evaluate.json:\n"
                                      "          cache: false\n")
    run_ok(["git", "add", "-A"], project, os.environ)
    run_ok(["git", "commit", "-qm", "pipeline"], project, os.environ)
    run_ok(["dvc", "exp", "run", "--name", "far", "-S", "nll=91.0"], project, os.environ)
    code, out, _ = run_command(capsys, main, "--tolerances", "tolerances.json", "--exp", "far")
    # The experiment wrote evaluate.json without a `run` block; lossy.json, committed, still has its own.
    assert code == EXIT_MISS and out[1] == "yours (far): cpu AMX, torch 2.14.1"
    assert "evaluate: test_nll 90.02 91 0.4 MISS" in [" ".join(line.split()) for line in out]


@pytest.mark.parametrize("case, message", [
    ("no-file", "error: absent.json: no tolerances file; run `dvc repro studies/variation/dvc.yaml`"),
    ("not-json", "error: tolerances.json: not a tolerances file (JSONDecodeError: "),
    ("no-tolerance", "error: tolerances.json: not a tolerances file (KeyError: 'tolerance')"),
    ("unknown-rev", "error: cannot read metrics/evaluate.json at 'no-such-rev': "),
])
def test_bad_input_is_one_line(project, capsys, case, message):
    args = ["--tolerances", "tolerances.json"]
    if case == "no-file":
        args = ["--tolerances", "absent.json"]
    elif case == "not-json":
        (project / "tolerances.json").write_text("{")
    elif case == "no-tolerance":
        (project / "tolerances.json").write_text(json.dumps({"metrics": {"metrics/evaluate.json": {"k": {}}}}))
    else:
        args += ["--against", "no-such-rev"]
    code, out, err = run_command(capsys, main, *args)
    assert code == EXIT_USER_ERROR and len(err) == 1 and err[0].startswith(message), err

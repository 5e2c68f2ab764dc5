"""What was written before the modules moved into sub-packages keeps working: model files, `python -m` commands
and console-script targets of the old module names."""

import json
import subprocess
import sys
import tomllib

import pytest
import torch

from conftest import REPO_ROOT
from vaepipe.vae.model import load_model

BEFORE = REPO_ROOT / "tests" / "data" / "before-subpackages"  # written by the flat package, with expected.json


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_model_files_written_before_load_and_compute_the_same(prior):
    expected = json.loads((BEFORE / "expected.json").read_text())[prior]
    model = load_model(str(BEFORE / f"{prior}.safetensors"), torch.device("cpu"))
    z = torch.tensor(expected["z"])
    with torch.no_grad():
        assert model.decode(z).sum(1).tolist() == pytest.approx(expected["decoded_logits_sum"], rel=1e-6)
        assert model.prior.log_prob(z).tolist() == pytest.approx(expected["prior_log_prob"], rel=1e-6)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                          env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"})


def test_the_old_launcher_module_runs_a_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint('ran with', sys.argv[1:])\n")
    done = run("-m", "vaepipe.launch", "--nproc-per-node", "1", str(script), "a", "b")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran with ['a', 'b']"


def test_the_old_anomaly_module_runs_the_command():
    done = run("-m", "vaepipe.anomaly_cli", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vaepipe-anomaly")


def test_console_scripts_of_either_module_name_are_the_commands():
    from vaepipe import anomaly_cli, compress_cli
    from vaepipe.anomaly.cli import entry_point
    from vaepipe.codecs.cli import compress_entry_point, decompress_entry_point

    assert (anomaly_cli.entry_point, compress_cli.compress_entry_point, compress_cli.decompress_entry_point) == \
        (entry_point, compress_entry_point, decompress_entry_point)
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vaepipe-anomaly": "vaepipe.anomaly.cli:entry_point",
                       "vaepipe-compress": "vaepipe.codecs.cli:compress_entry_point",
                       "vaepipe-decompress": "vaepipe.codecs.cli:decompress_entry_point",
                       "vaepipe-verify": "vaepipe.core.verify:entry_point"}

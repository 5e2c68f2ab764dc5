"""Without a C++ compiler (slim images, many laptops) TorchInductor cannot build kernels: training and every
stage then run eagerly, after one notice line (vaepipe.core.runtime.compiled)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, STAGES

NOTICE = "notice: no C++ compiler (/nonexistent/g++) found, so torch.compile is off"


@pytest.fixture(scope="module")
def trained_without_compiler(tiny_run, tmp_path_factory):
    """The tiny run's train and evaluate stages again, compiled like it (VAEPIPE_COMPILE=always), in subprocesses
    that find no compiler and no compiled kernels on disk: their exit codes, stderr lines and the directory."""
    root = tmp_path_factory.mktemp("no-compiler")
    shutil.copytree(tiny_run / "data", root / "data", copy_function=os.link)
    shutil.copy(tiny_run / "params.yaml", root / "params.yaml")
    env = dict(os.environ, CXX="/nonexistent/g++", VAEPIPE_COMPILE="always", TORCHINDUCTOR_CACHE_DIR=str(root / "empty-inductor-cache"),
               PYTHONPATH=str(REPO_ROOT / "src"))
    runs = {}
    for stage in ("train", "evaluate"):
        done = subprocess.run([sys.executable, str(STAGES / f"{stage}.py")], cwd=root, env=env, capture_output=True,
                              text=True)
        runs[stage] = done.returncode, [line for line in done.stderr.splitlines() if line.startswith("notice:")]
    return root, runs


@pytest.mark.parametrize("stage", ["train", "evaluate"])
def test_a_stage_runs_eagerly_with_one_notice(trained_without_compiler, stage):
    _, runs = trained_without_compiler
    code, notices = runs[stage]
    assert code == 0
    assert len(notices) == 1 and notices[0].startswith(NOTICE), notices


def test_eager_training_matches_the_compiled_run_to_float_rounding(trained_without_compiler, tiny_run):
    root, _ = trained_without_compiler
    eager = json.loads((root / "metrics/train/metrics.json").read_text())
    compiled = json.loads((tiny_run / "metrics/train/metrics.json").read_text())
    for split in ("train", "val"):
        for name in ("neg_elbo", "recon", "kl"):
            assert eager[split][name] == pytest.approx(compiled[split][name], rel=1e-3), (split, name)
    eager_nll = json.loads((root / "metrics/evaluate.json").read_text())
    compiled_nll = json.loads((tiny_run / "metrics/evaluate.json").read_text())
    assert eager_nll.keys() == compiled_nll.keys()
    for name, value in compiled_nll.items():
        if isinstance(value, float):
            assert eager_nll[name] == pytest.approx(value, rel=1e-3), name

"""Shared fixtures. Tests that need MNIST read it from the offline mirror: VAE_DATA_MIRROR, else
../shared/data beside the checkout. Under CI (CI=true) a missing mirror fails the test, never skips it."""

from __future__ import annotations

import contextlib
import os
import runpy
import shutil
from pathlib import Path

import pytest
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = REPO_ROOT / "stages"


def mirror_dir() -> Path | None:
    candidates = [os.environ.get("VAE_DATA_MIRROR"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    found = mirror_dir()
    if found is None:
        message = "MNIST mirror not found: set VAE_DATA_MIRROR or place the data in ../shared/data"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def mnist_raw(mnist_mirror, tmp_path_factory) -> Path:
    """The four verified MNIST IDX files, downloaded once per session from the mirror."""
    from vaepipe.data import download

    out = tmp_path_factory.mktemp("mnist-raw")
    download("mnist", out, str(mnist_mirror))
    return out


@pytest.fixture(scope="session")
def fashion_raw(mnist_mirror, tmp_path_factory) -> Path:
    """The four verified Fashion-MNIST IDX files (the out-of-distribution set of an MNIST model)."""
    from vaepipe.data import download

    out = tmp_path_factory.mktemp("fashion-raw")
    download("fashion-mnist", out, str(mnist_mirror))
    return out


# A whole pipeline run in seconds: the stages on real MNIST with these params.
TINY = {
    "latent_dim": 4,
    "train.hidden": [32],
    "train.epochs": 1,
    "train.train_subset": 500,
    "train.val_size": 200,
    "evaluate.k": 5,
    "evaluate.test_subset": 100,
    "evaluate.n_reconstructions": 4,
    "judge.epochs": 1,
    "judge.train_subset": 500,
    "generate.n_samples": 4,
    "generate.n_judged": 200,
    "generate.gmm_components": 3,
    "generate.n_interpolations": 2,
    "generate.interpolation_steps": 3,
    "style.hidden": [32],
    "style.epochs": 1,
    "style.n_styles": 3,
    "style.samples_per_class": 3,
    "style.n_judged": 200,
    "downstream.label_budgets": [20],
    "downstream.label_draws": 1,
    "downstream.unlabelled": 1000,
    "cluster.umap_epochs": 5,
    "cluster.gmm_inits": 1,
    "compress.test_subset": 200,
    "anomaly.k": 2,
    "anomaly.n_fit": 300,
    "anomaly.n_val": 100,
    "anomaly.test_subset": 300,
}

def set_key(params: dict, dotted: str, value: object) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        params = params[section]
    params[key] = value


@contextlib.contextmanager
def torch_state_kept():
    """Stages switch deterministic algorithms on and reseed torch; keep that from leaking into other tests."""
    deterministic, rng = torch.are_deterministic_algorithms_enabled(), torch.get_rng_state()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)


STAGES_IN_ORDER = ("train", "evaluate", "judge", "cluster", "generate", "style", "downstream", "compress", "corrupt", "anomaly")


def every_stage_run(tmp_path_factory, mnist_raw: Path, fashion_raw: Path, name: str, overrides: dict) -> Path:
    """A working directory after one good run of every stage, with tiny params (`TINY`) and `overrides`."""
    root = tmp_path_factory.mktemp(name) / "repo"
    shutil.copytree(mnist_raw, root / "data" / "raw", copy_function=os.link)
    shutil.copytree(fashion_raw, root / "data" / "ood", copy_function=os.link)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for dotted, value in {**TINY, **overrides}.items():
        set_key(params, dotted, value)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for stage in STAGES_IN_ORDER:
            run_stage_script(stage)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_raw, fashion_raw) -> Path:
    """A working directory after one good run of every stage, with tiny params (`TINY`)."""
    return every_stage_run(tmp_path_factory, mnist_raw, fashion_raw, "tiny-run", {})


def run_stage_script(stage: str) -> None:
    """Run stages/<stage>.py in this process, in the current directory, as `python stages/<stage>.py` would."""
    with torch_state_kept():
        runpy.run_path(str(STAGES / f"{stage}.py"), run_name="__main__")


@pytest.fixture
def work_dir(tiny_run, tmp_path, monkeypatch) -> Path:
    """A copy of the tiny run's models (what the commands read by default), made the current directory."""
    shutil.copytree(tiny_run / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_command(capsys, main, *args) -> tuple[int, list[str], list[str]]:
    """A command's main(argv) as its installed script runs it: its exit code, stdout lines, non-blank stderr lines."""
    from vaepipe.cli import run_stage

    capsys.readouterr()
    code = 0
    try:
        run_stage(lambda: main([str(a) for a in args]))
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out.splitlines(), [line for line in err.splitlines() if line.strip()]

"""Shared fixtures. Tests that need MNIST read it from the offline mirror: VAE_DATA_MIRROR, else
../shared/data beside the checkout. Without it they skip, and under CI=true a skip fails (tests/ci_skips.py)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import runpy
import shutil
import subprocess
import typing
from pathlib import Path

import filelock
import pytest
import torch
import yaml

import vaepipe.core.params
from vaepipe.core.params import Params
from vaepipe.core.runtime import COMPILE_ENV

pytest_plugins = ("pytester", "ci_skips")

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = REPO_ROOT / "stages"


# A test that needs one of these runs waits for it (a minute or more from cold): `slow`, as are the tests marked
# by hand.
RUN_FIXTURES = {"tiny_run", "tiny_project"}


# The modules that work in the tiny DVC experiment's repository (`tiny_project`): under pytest-xdist (`make test`)
# they run on one worker, one after the other, as that fixture is made once and DVC takes one command at a time in a
# repository; test_pipeline first, whose first test starts the experiment (test_explorer's first one needs the tiny
# run, made on another worker meanwhile). Collection checks the list.
TINY_EXPERIMENT_MODULES = ("test_pipeline", "test_scale_out", "test_explorer")


def work_unit(module: Path) -> str:
    """What pytest-xdist hands a worker at once: a module, or the tiny experiment's modules together."""
    return "tiny experiment" if module.stem in TINY_EXPERIMENT_MODULES else str(module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if RUN_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        if "tiny_project" in fixtures and item.path.stem not in TINY_EXPERIMENT_MODULES:
            raise pytest.UsageError(f"{item.path.name} uses the tiny experiment: add it to TINY_EXPERIMENT_MODULES "
                                    "in tests/conftest.py")
    # Longest first, so that no worker is left with a long unit at the end: the tiny experiment, then the units by
    # their number of slow tests (the first of them makes the tiny run while the tiny experiment runs), then the rest
    # as collected. The units are handed out in this order (see pytest_xdist_make_scheduler).
    slow = collections.Counter(work_unit(item.path) for item in items if item.get_closest_marker("slow"))

    def run_order(item: pytest.Item) -> tuple[int, int]:
        if item.path.stem in TINY_EXPERIMENT_MODULES:
            return 0, TINY_EXPERIMENT_MODULES.index(item.path.stem)
        return 1, -slow[work_unit(item.path)]
    items.sort(key=run_order)


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist hands out a module at a time (its fixtures made once per session), and the modules of the tiny
    experiment as one unit, in the order of collection."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesWithTheTinyExperimentTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(Path(nodeid.split("::", 1)[0]))
    config.option.loadscopereorder = False  # xdist would hand out the units with the most tests first
    return ModulesWithTheTinyExperimentTogether(config, log)


def made_once(tmp_path_factory, worker_id: str, name: str, make):
    """`make()` (a JSON value) once for the whole session: under pytest-xdist the first worker to ask makes it, the
    others wait for it and read it."""
    if worker_id == "master":
        return make()
    shared = tmp_path_factory.getbasetemp().parent
    with filelock.FileLock(shared / f"{name}.lock"):
        made = shared / f"{name}.json"
        if not made.is_file():
            made.write_text(json.dumps(make()))
        return json.loads(made.read_text())


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
        pytest.skip("MNIST mirror not found: set VAE_DATA_MIRROR or place the data in ../shared/data")
    return found


@pytest.fixture(scope="session")
def mnist_raw(mnist_mirror, tmp_path_factory) -> Path:
    """The four verified MNIST IDX files, downloaded once per session from the mirror."""
    from vaepipe.data.datasets import download

    out = tmp_path_factory.mktemp("mnist-raw")
    download("mnist", out, str(mnist_mirror))
    return out


@pytest.fixture(scope="session")
def fashion_raw(mnist_mirror, tmp_path_factory) -> Path:
    """The four verified Fashion-MNIST IDX files (the out-of-distribution set of an MNIST model)."""
    from vaepipe.data.datasets import download

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
    "code_prior.components": 3,
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
    "cluster.self_label_epochs": 0,  # the pipeline test (PIPELINE_TINY) runs it
    "compress.test_subset": 200,
    "lossy.test_subset": 200,
    "anomaly.k": 2,
    "anomaly.n_fit": 300,
    "anomaly.n_val": 100,
    "anomaly.test_subset": 300,
}


def chromium() -> str:
    """Debian's chromium (`.ci/run` installs it with apt-get)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium not found (apt-get install chromium)")
    return found


def set_key(params: dict, dotted: str, value: object) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        params = params[section]
    params[key] = value


@contextlib.contextmanager
def torch_state_kept():
    """Stages switch deterministic algorithms on and reseed torch, and a library can change torch's thread count
    (UMAP did, through numba: see umap_embedding), which changes the floats of what runs next; keep all that from
    leaking into the next stage or test."""
    deterministic, rng, threads = (torch.are_deterministic_algorithms_enabled(), torch.get_rng_state(),
                                   torch.get_num_threads())
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)
        torch.set_num_threads(threads)


STAGES_IN_ORDER = ("download", "train", "evaluate", "judge", "cluster", "generate", "style", "downstream", "compress",
                   "lossy", "corrupt", "anomaly", "explore")


@contextlib.contextmanager
def params_reads_recorded():
    """Record every params key read after `load_params()` returns (its own validation reads them all)."""
    read: set[str] = set()
    sections = {name: hint for name, hint in typing.get_type_hints(Params).items() if dataclasses.is_dataclass(hint)}
    classes = {Params: "", **{cls: f"{name}." for name, cls in sections.items()}}
    load = vaepipe.core.params.load_params

    def recording_load(*args, **kwargs):
        params = load(*args, **kwargs)
        # The loaded instances only: settings a stage derives from them (e.g. style's TrainParams) are not keys.
        loaded = {id(params), *(id(getattr(params, name)) for name in sections)}
        for cls, prefix in classes.items():
            leaves = {f.name for f in dataclasses.fields(cls)} - set(sections)

            def getattribute(self, name, prefix=prefix, leaves=leaves):
                if name in leaves and id(self) in loaded:
                    read.add(prefix + name)
                return object.__getattribute__(self, name)
            cls.__getattribute__ = getattribute
        return params
    vaepipe.core.params.load_params = recording_load
    try:
        yield read
    finally:
        vaepipe.core.params.load_params = load
        for cls in classes:
            if "__getattribute__" in vars(cls):
                del cls.__getattribute__


def params_read_file(root: Path) -> Path:
    """Beside a run's directory (not in it): the params keys each stage read in that run, as JSON."""
    return root.parent / "params-read.json"


def every_stage_run(tmp_path_factory, mnist_raw: Path, fashion_raw: Path, name: str, overrides: dict,
                    compiled: bool = True) -> Path:
    """A working directory after one good run of every stage, with tiny params (`TINY`) and `overrides`, compiled
    (VAEPIPE_COMPILE=always) or as a run this small is by default (eagerly); the params keys each stage read go to
    `params_read_file(root)`."""
    root = tmp_path_factory.mktemp(name) / "repo"
    shutil.copytree(mnist_raw, root / "data" / "raw", copy_function=os.link)
    shutil.copytree(fashion_raw, root / "data" / "ood", copy_function=os.link)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for dotted, value in {**TINY, **overrides}.items():
        set_key(params, dotted, value)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv(COMPILE_ENV, "always" if compiled else "auto")
        read = {}
        for stage in STAGES_IN_ORDER:
            with params_reads_recorded() as read[stage]:
                run_stage_script(stage)
    params_read_file(root).write_text(json.dumps({stage: sorted(keys) for stage, keys in read.items()}))
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id, mnist_raw, fashion_raw) -> Path:
    """A working directory after one good run of every stage, with tiny params (`TINY`), compiled: too small a run to
    be worth compiling, but the one that takes every stage's compiled path."""
    return Path(made_once(tmp_path_factory, worker_id, "tiny-run",
                          lambda: str(every_stage_run(tmp_path_factory, mnist_raw, fashion_raw, "tiny-run", {}))))


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
    from vaepipe.core.cli import run_stage

    capsys.readouterr()
    code = 0
    try:
        run_stage(lambda: main([str(a) for a in args]))
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out.splitlines(), [line for line in err.splitlines() if line.strip()]


# The end-to-end tests' experiment: the whole DVC pipeline on real MNIST, small enough for CI.
PIPELINE_TINY = {
    "train.epochs": 2,
    "train.train_subset": 5000,
    "train.val_size": 1000,
    "evaluate.k": 50,
    "evaluate.test_subset": 1000,
    "downstream.label_draws": 1,
    "latent_dim": 2,  # also exercises the manifold figure
    "anomaly.n_fit": 1000,
    "anomaly.n_val": 300,
    "anomaly.test_subset": 1000,
    "cluster.umap_epochs": 10,
    "cluster.gmm_inits": 1,  # 8 s where 4 restarts take 31 (the same clusters, accuracy 0.25 either way)
    "cluster.self_label_epochs": 1,
    "cluster.self_label_subset": 5000,
    "cluster.overclusters": 12,  # the default's splitting and merging, from a cheaper mixture than 20 components
    "compress.test_subset": 1000,
    "lossy.test_subset": 1000,
    "judge.epochs": 1,
    "judge.train_subset": 5000,
    "generate.n_judged": 1000,
    "code_prior.components": 10,
    "style.epochs": 2,
    "style.n_judged": 1000,
}


def run_ok(args, cwd, env) -> str:
    """Run a command; its stdout, or a test failure showing all it printed."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def pipeline_outputs(root: Path) -> dict[str, bytes]:
    """Every file the pipeline writes, and dvc.lock with their hashes."""
    files = [root / "dvc.lock"] + [f for d in ("models", "metrics", "plots") for f in (root / d).rglob("*")]
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(files) if f.is_file()}


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory, mnist_mirror) -> tuple[Path, dict]:
    """A copy of this checkout's tracked and unignored files, committed in a new git repository (so with an empty
    DVC cache), after `dvc exp run` of the tiny params: the repository and the environment to run commands in it
    (shared: leave them as found)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    root = tmp_path_factory.mktemp("clone") / "repo"
    for name in files:
        if name and (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    env = dict(os.environ, VAE_DATA_MIRROR=str(mnist_mirror), PYTHONPATH=str(root / "src"),
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        run_ok(command, root, env)
    run_ok(["dvc", "exp", "run", "--name", "tiny"] + [a for k, v in PIPELINE_TINY.items() for a in ("-S", f"{k}={v}")],
           root, env)
    return root, env

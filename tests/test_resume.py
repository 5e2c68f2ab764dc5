"""Kill the train stage with SIGKILL at chosen moments, re-run it, and get the bytes of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # each test trains, and most kill and resume a run

TRAIN_SCRIPT = REPO_ROOT / "stages" / "train.py"
EPOCHS, STEPS_PER_EPOCH = 4, 16  # 2,000 images in batches of 128
CHECKPOINT = Path("checkpoints/train/state.safetensors")

# Runs the train stage after arranging for the process to SIGKILL itself at the n-th gradient step
# ("step") or right after the n-th safetensors temporary file is written, before it is renamed into place
# ("checkpoint-write"; before the final model, the only such files are checkpoints): the moments a crash
# or a `kill -9` can hit.
KILLER = """
import os, runpy, signal, sys
from vaepipe.core import artifacts
from vaepipe.vae import gradients, training
mode, n, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = 0
def count():
    global calls
    calls += 1
    if calls == n:
        os.kill(os.getpid(), signal.SIGKILL)
def killing(step):
    def killing_step(self, *args):
        count()
        return step(self, *args)
    return killing_step
if mode == "step":  # the hand-written gradient's step, or autograd's
    gradients.ELBOGradient.__call__ = killing(gradients.ELBOGradient.__call__)
    training.Trainer._autograd_step = killing(training.Trainer._autograd_step)
else:
    save_file = artifacts.save_file
    def killing_save_file(*args, **kwargs):
        save_file(*args, **kwargs)
        count()
    artifacts.save_file = killing_save_file
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


def make_workdir(path: Path, data_dir: Path, **train_overrides) -> Path:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params.update(latent_dim=8, device="cpu")
    params["train"].update(hidden=[64], epochs=EPOCHS, batch_size=128, val_size=500, train_subset=2000,
                           lr_schedule="cosine", kl_warmup=0.5, **train_overrides)
    path.mkdir()
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / "data").mkdir()
    (path / "data" / "raw").symlink_to(data_dir)
    return path


def run_train(workdir: Path, kill: tuple[str, int] | None = None, script: Path = TRAIN_SCRIPT
              ) -> subprocess.CompletedProcess:
    command = [sys.executable, str(script)]
    if kill:
        command = [sys.executable, "-c", KILLER, kill[0], str(kill[1]), str(script)]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)


def outputs(workdir: Path) -> dict[str, bytes]:
    files = [workdir / "models" / "vae.safetensors", *sorted((workdir / "metrics" / "train").rglob("*.*"))]
    return {str(f.relative_to(workdir)): f.read_bytes() for f in files}


# The default model (hand-written gradient), and a learned prior (autograd) keeping its best epoch.
MODELS = {"default": {}, "mog-prior": {"prior": "mog", "prior_components": 10, "keep": "best"}}


@pytest.fixture(scope="module")
def references(mnist_raw, tmp_path_factory):
    """The outputs of an uninterrupted run of each of MODELS, made when first asked for."""
    made: dict[str, dict[str, bytes]] = {}

    def reference_of(choice: str) -> dict[str, bytes]:
        if choice not in made:
            workdir = make_workdir(tmp_path_factory.mktemp("ref") / "repo", mnist_raw, **MODELS[choice])
            done = run_train(workdir)
            assert done.returncode == 0, done.stderr
            assert not (workdir / "checkpoints" / "train" / CHECKPOINT.name).exists()  # removed once training is done
            made[choice] = outputs(workdir)
        return made[choice]
    return reference_of


@pytest.fixture(scope="module")
def reference(references) -> dict[str, bytes]:
    return references("default")


@pytest.mark.parametrize("model_choice", MODELS)
def test_killed_runs_resume_to_the_same_bytes(references, model_choice, mnist_raw, tmp_path):
    workdir = make_workdir(tmp_path / "repo", mnist_raw, **MODELS[model_choice])

    mid_epoch_3 = run_train(workdir, kill=("step", 2 * STEPS_PER_EPOCH + 5))
    assert mid_epoch_3.returncode == -signal.SIGKILL
    assert (workdir / CHECKPOINT).is_file()

    # The re-run resumes after epoch 2, and is killed while writing the checkpoint of epoch 3.
    during_save = run_train(workdir, kill=("checkpoint-write", 1))
    assert during_save.returncode == -signal.SIGKILL
    assert "resuming from checkpoints/train/state.safetensors after epoch 2 of 4" in during_save.stdout
    assert list((workdir / CHECKPOINT.parent).glob(".*.tmp")), "the kill should have left a temporary file"

    # What `dvc repro` does before re-running a stage: delete its outputs.
    shutil.rmtree(workdir / "metrics", ignore_errors=True)
    shutil.rmtree(workdir / "models", ignore_errors=True)
    finished = run_train(workdir)
    assert finished.returncode == 0, finished.stderr
    assert "resuming from checkpoints/train/state.safetensors after epoch 2 of 4" in finished.stdout
    assert outputs(workdir) == references(model_choice)
    assert list((workdir / CHECKPOINT.parent).iterdir()) == []


def test_curves_have_each_epoch_once(reference):
    for name, content in reference.items():
        if name.endswith(".tsv"):
            steps = [line.split("\t")[0] for line in content.decode().splitlines()[1:]]
            assert steps == [str(e) for e in range(1, EPOCHS + 1)], name


@pytest.fixture(scope="module")
def killed_in_epoch_4(mnist_raw, tmp_path_factory) -> Path:
    """A default run killed at its first step of epoch 4: the checkpoint of epoch 3 is on disk. Each test that
    changes what a re-run sees takes a copy (`killed_copy`), so one killed run serves them all."""
    workdir = make_workdir(tmp_path_factory.mktemp("killed") / "repo", mnist_raw)
    assert run_train(workdir, kill=("step", 3 * STEPS_PER_EPOCH)).returncode == -signal.SIGKILL
    assert (workdir / CHECKPOINT).is_file()
    return workdir


@pytest.fixture
def killed_copy(killed_in_epoch_4, tmp_path) -> Path:
    workdir = tmp_path / "repo"
    shutil.copytree(killed_in_epoch_4, workdir, symlinks=True)
    return workdir


def test_checkpoint_from_other_params_is_not_used(killed_copy, mnist_raw, tmp_path):
    workdir = killed_copy
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    other_lr = params["train"]["lr"] / 2
    fresh = make_workdir(tmp_path / "fresh", mnist_raw, lr=other_lr)
    assert run_train(fresh).returncode == 0

    params["train"]["lr"] = other_lr
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    done = run_train(workdir)
    assert done.returncode == 0, done.stderr
    assert "checkpoints/train/state.safetensors was made with other params or code; starting fresh" in done.stdout
    assert "resuming" not in done.stdout
    assert outputs(workdir) == outputs(fresh)


def starts_fresh(done: subprocess.CompletedProcess, why: str) -> bool:
    said = [line for line in done.stdout.splitlines() if line.startswith(f"checkpoints/train/state.safetensors {why}")]
    return done.returncode == 0 and len(said) == 1 and said[0].endswith("; starting fresh") and "resuming" not in done.stdout


def test_checkpoint_from_another_stage_script_is_not_used(reference, killed_copy):
    workdir = killed_copy
    edited = workdir / "stages" / "train.py"  # the same name: only the content differs
    edited.parent.mkdir()
    edited.write_text(TRAIN_SCRIPT.read_text() + "# an edit to the stage script\n")
    assert starts_fresh(run_train(workdir, script=edited), "was made with other params or code")
    assert outputs(workdir) == reference


def test_checkpoint_from_other_training_data_is_not_used(killed_copy, mnist_raw):
    workdir = killed_copy
    (workdir / "data" / "raw").unlink()
    shutil.copytree(mnist_raw, workdir / "data" / "raw", copy_function=os.link)
    images = workdir / "data" / "raw" / "train-images-idx3-ubyte"
    images.unlink()  # a file of its own, not a link to the mirror's
    pixels = bytearray((mnist_raw / images.name).read_bytes())
    pixels[-1] ^= 0xFF  # one pixel of the last training image: a valid file, other data
    images.write_bytes(bytes(pixels))
    assert starts_fresh(run_train(workdir), "was made with other params or code")


def test_unreadable_checkpoint_is_not_used(reference, killed_copy):
    workdir = killed_copy
    checkpoint = workdir / CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # as if the disk had lost its end
    assert starts_fresh(run_train(workdir), "is unreadable")
    assert outputs(workdir) == reference


def processes_in(workdir: Path) -> list[int]:
    """Processes whose working folder is `workdir` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").resolve() == workdir.resolve():
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours
            pass
    return found


def test_two_processes_killed_with_their_launcher_resume_to_the_same_bytes(mnist_raw, tmp_path):
    """`kill -9` of the stage (the launcher, torchrun's agent) takes its training processes with it; the re-run
    resumes from the last whole epoch and ends as an uninterrupted 2-process run does."""
    epochs = 12  # long enough to be killed mid-run
    launch = [sys.executable, "-m", "vaepipe.vae.launch", "--nproc-per-node", "2", str(TRAIN_SCRIPT)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    workdirs = [make_workdir(tmp_path / name, mnist_raw, nproc=2) for name in ("uninterrupted", "killed")]
    for workdir in workdirs:
        params = yaml.safe_load((workdir / "params.yaml").read_text())
        params["train"]["epochs"] = epochs
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    uninterrupted, killed = workdirs
    done = subprocess.run(launch, cwd=uninterrupted, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    with subprocess.Popen(launch, cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as stage:
        while not (killed / CHECKPOINT).exists():
            assert stage.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.02)
        stage.kill()
    deadline = time.monotonic() + 10
    while processes_in(killed):
        assert time.monotonic() < deadline, f"processes {processes_in(killed)} outlived their launcher"
        time.sleep(0.1)
    resumed = subprocess.run(launch, cwd=killed, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoints/train/state.safetensors after epoch " in resumed.stdout
    assert f"after epoch {epochs} of" not in resumed.stdout
    assert outputs(killed) == outputs(uninterrupted)


def test_an_edit_anywhere_in_the_package_makes_a_new_fingerprint(tmp_path, monkeypatch):
    """Every .py file of vaepipe and its sub-packages, by its path in the package: a change in a sub-package, or
    a module moved to another one with the same bytes, is another fingerprint, so its checkpoint is not resumed."""
    from vaepipe.vae import checkpoint

    package = tmp_path / "vaepipe"
    shutil.copytree(checkpoint.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(checkpoint, "PACKAGE_DIR", package)
    original = checkpoint.fingerprint({"seed": 1})
    assert checkpoint.fingerprint({"seed": 1}) == original
    module = package / "latent" / "clustering.py"
    text = module.read_text()
    module.write_text(text + "\n# an edit\n")
    assert checkpoint.fingerprint({"seed": 1}) != original
    module.write_text(text)
    assert checkpoint.fingerprint({"seed": 1}) == original
    module.rename(package / "generation" / "clustering.py")
    assert checkpoint.fingerprint({"seed": 1}) != original

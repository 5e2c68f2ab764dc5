"""Data-parallel training (vaepipe.vae.distributed): processes that each compute a share of every batch must together
compute the one-process gradient, and end as replicas of one model. Two real gloo processes, on the CPU."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import REPO_ROOT
from vaepipe.core.errors import PipelineError
from vaepipe.core.params import load_params
from vaepipe.vae.distributed import World
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.training import Trainer, TrainingError, train

DEFAULT_TRAIN = load_params(REPO_ROOT / "params.yaml").train
# One step an epoch: after it, the flat gradient is the whole batch's at the initial weights. 101 images split
# 50 + 51, so the shares' unequal weights are tested too.
IMAGES = 101


def train_params(**changes):
    return dataclasses.replace(DEFAULT_TRAIN, **{"epochs": 2, "batch_size": IMAGES, "kl_warmup": 0.0,
                                                 "precision": "fp32", **changes})


def images() -> torch.Tensor:
    return torch.rand(IMAGES, 784, generator=torch.Generator().manual_seed(0))


def one_epoch(config: VAEConfig, params, world: World) -> tuple[torch.Tensor, list[float]]:
    """The gradient of the (only) step of one epoch, and the epoch's losses."""
    torch.manual_seed(0)
    trainer = Trainer(VAE(config), images(), params, seed=0, world=world)
    stats = trainer.run_epoch()
    return trainer.flat_params.grad.numpy().copy(), list(vars(stats).values())


def in_process_group(rank: int, size: int, store: str, results: dict, task, *args) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    try:
        results[rank] = task(*args, World(rank, size))
    except PipelineError as exc:
        results[rank] = exc
    finally:
        dist.destroy_process_group()


def on_two_processes(tmp_path, task, *args) -> dict:
    """`task(*args, world)` on two gloo processes; what each returned (or the PipelineError it raised), by rank."""
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(in_process_group, args=(2, str(tmp_path / "store"), results, task, *args), nprocs=2)
        return dict(results)


MODELS = {
    "hand-written gradient (mlp)": (VAEConfig(arch="mlp", latent_dim=4, hidden=(32,)), {}),
    "autograd (conv, iwae)": (VAEConfig(arch="conv", latent_dim=4, hidden=(4,)), {"objective": "iwae", "samples": 2}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_two_processes_compute_the_one_process_gradient(name, tmp_path):
    config, changes = MODELS[name]
    params = train_params(arch=config.arch, hidden=config.hidden, **changes)
    alone_grad, alone_stats = one_epoch(config, params, World())
    shared = on_two_processes(tmp_path, one_epoch, config, params)
    # Every process holds the same summed gradient, to the byte, and it is the one-process gradient up to the
    # order of the floating-point sums: as a vector, within 1e-4 of its length (element by element, the smallest
    # entries of the conv model's gradient differ by up to 1 % in the full suite, where torch.compile has fallen
    # back to eager kernels in the test process, but not in the spawned ones).
    assert shared[0][0].tobytes() == shared[1][0].tobytes()
    difference = np.linalg.norm(shared[0][0] - alone_grad) / np.linalg.norm(alone_grad)
    assert difference < 1e-4, f"the summed gradient is {difference:.1e} of its length from one process's"
    assert shared[0][1] == pytest.approx(alone_stats, rel=1e-5)
    assert abs(alone_grad).max() > 0.01  # a real gradient, not zeros compared with zeros


def fit(config: VAEConfig, params, world: World) -> bytes:
    model = VAE(config)
    train(model, images(), images()[:20], params, 0, lambda *stats: None, world=world)
    return b"".join(p.detach().numpy().tobytes() for p in model.parameters())


@pytest.mark.slow
def test_two_processes_train_replicas_of_one_model(tmp_path):
    config = VAEConfig(arch="mlp", latent_dim=4, hidden=(32,))
    params = train_params(batch_size=16)
    # The processes are not seeded alike: each builds different initial weights, and training starts from process 0's.
    shared = on_two_processes(tmp_path, fit, config, params)
    assert isinstance(shared[0], bytes) and shared[0] == shared[1]


def differing_replica(world: World) -> None:
    world.require_same(torch.tensor([float(world.rank)]), "the trained model")


def test_replicas_that_differ_are_an_error(tmp_path):
    shared = on_two_processes(tmp_path, differing_replica)
    assert shared[0] is None
    assert str(shared[1]) == "the trained model differs between process 0 and process 1 of 2"


def test_a_last_batch_too_small_to_share_is_an_error():
    params = train_params(batch_size=50)  # 101 = 50 + 50 + 1: the last batch's one image cannot be shared by two
    with pytest.raises(TrainingError, match=r"`train.nproc` is 2, more than the 1 image\(s\) of an epoch's last batch"):
        Trainer(VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(8,))), images(), params, seed=0, world=World(0, 2))


def test_shares_cover_a_batch_once_in_order():
    for n in (1, 2, 7, 128):
        for size in (1, 2, 3):
            shares = [World(rank, size).share(n) for rank in range(size)]
            assert [i for s in shares for i in range(n)[s]] == list(range(n))
            assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1


FAILING_SCRIPT = """
import os
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import PipelineError

def main():
    if os.environ["RANK"] in os.environ["FAILING_RANKS"].split(","):
        raise PipelineError(f"process {os.environ['RANK']} found no space left on its disk")
    print("process", os.environ["RANK"], "done")

run_stage(main)
"""


def launched(tmp_path, nproc, failing: str) -> subprocess.CompletedProcess:
    """`python -m vaepipe.vae.launch` of a script that fails in the processes `failing` names, in a folder with
    this checkout's params.yaml; torchrun's temporary files go under tmp_path/tmp."""
    (tmp_path / "script.py").write_text(FAILING_SCRIPT)
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path)
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), FAILING_RANKS=failing, TMPDIR=str(tmp_path / "tmp"))
    return subprocess.run([sys.executable, "-m", "vaepipe.vae.launch", "--nproc-per-node", str(nproc), "script.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def error_lines(ran: subprocess.CompletedProcess) -> list[str]:
    return [line for line in ran.stderr.splitlines() if line.strip()]


def test_the_launcher_shows_process_0_and_leaves_no_files(tmp_path):
    ran = launched(tmp_path, 2, failing="")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["process 0 done"]  # process 1's output went to a file, since removed
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failing_process_other_than_0_is_one_line_naming_it(tmp_path):
    ran = launched(tmp_path, 2, failing="1")
    assert ran.returncode == 2  # the failed process's own exit code: a PipelineError's
    (line,) = error_lines(ran)
    assert line.startswith("error: process 1 of 2: process 1 found no space left on its disk (its output: ")
    log_dir = line.removeprefix(line.split("(its output: ")[0] + "(its output: ").removesuffix(")")
    assert "found no space left" in Path(log_dir, "stderr.log").read_text()  # kept, for the whole story


def test_a_failing_process_0_is_its_own_one_line(tmp_path):
    ran = launched(tmp_path, 2, failing="0,1")
    assert ran.returncode == 2  # the failed process's own exit code: a PipelineError's
    assert error_lines(ran) == ["error: process 0 found no space left on its disk"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_launcher_refuses_no_processes(tmp_path):
    ran = launched(tmp_path, 0, failing="")
    assert ran.returncode != 0
    assert error_lines(ran) == ["error: --nproc-per-node must be >= 1, got 0"]

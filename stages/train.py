"""Stage `train`: fit the VAE on the training split, log curves with dvclive, save the weights.

    dvc repro train
    dvc exp run -S latent_dim=32 -S train.epochs=50
    dvc exp run -S train.arch=conv -S train.hidden=[32,64] -S train.prior=vamp
    dvc exp run -S train.nproc=2                # two processes share every batch

Resumable: the state after every epoch goes to a checkpoint outside the stage's outputs (DVC deletes
outputs before re-running a stage), and a re-run after a crash continues from the last whole epoch,
ending with the same bytes as an uninterrupted run. The curves are written next to the checkpoint
and moved onto metrics/train only when training has finished, so a failed run leaves the old ones.

With `train.nproc` > 1, dvc.yaml starts it on that many processes (vaepipe.vae.launch, torchrun), which train one model
together (vaepipe.vae.distributed); process 0 logs and writes the outputs.
"""

import dataclasses
import functools
from pathlib import Path

import torch
from dvclive import Live

from vaepipe.core import paths
from vaepipe.core.artifacts import replace_dir, save_weights
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import PipelineError
from vaepipe.core.params import Params, load_params
from vaepipe.core.runtime import make_deterministic, provenance, select_device
from vaepipe.data.datasets import SPLIT_FILES, binarize_set, load_split
from vaepipe.vae.checkpoint import Checkpoint, fingerprint
from vaepipe.vae.distributed import World, joined
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.training import split_train_val, train



def main() -> None:
    params = load_params()
    make_deterministic(params.seed)
    with joined(select_device(params.device)) as (world, device):
        if world.size != params.train.nproc:
            raise PipelineError(f"running on {world.size} processes, but `train.nproc` is {params.train.nproc}")
        fit(params, world, device)


def fit(params: Params, world: World, device: torch.device) -> None:
    """Train in this process; only the main one of a multi-process run logs and writes the outputs."""
    images, _ = load_split(paths.RAW, "train")
    train_x, val_x = split_train_val(images, params.train.val_size, params.seed, params.train.train_subset)
    # Binarised once, so every epoch is scored on the same bits.
    val_x = binarize_set(val_x, params.train.binarize)
    config = VAEConfig.from_params(params.latent_dim, params.train)
    model = VAE(config).to(device)
    if world.is_main:
        print(f"training {config} on {len(train_x)} images ({device}, {world.size} process(es)), "
              f"validating on {len(val_x)}")
    # The dataset enters the fingerprint through its files (`inputs`).
    # Not the device: a run cut short on a GPU can finish on a CPU, and back (vaepipe.vae.training).
    settings = {"seed": params.seed, "latent_dim": params.latent_dim, "train": dataclasses.asdict(params.train)}
    inputs = [Path(__file__), *(Path(paths.RAW) / name for name in SPLIT_FILES["train"])]
    checkpoint = Checkpoint(paths.TRAIN_CHECKPOINT, fingerprint(settings, inputs))
    train_on = functools.partial(train, model, train_x.to(device), val_x.to(device), params.train, params.seed,
                                 checkpoint=checkpoint, world=world)
    if not world.is_main:
        train_on(lambda *stats: None)
        return

    with Live(paths.TRAIN_LIVE_IN_PROGRESS, dvcyaml=None, save_dvc_exp=False) as live:
        def log_epoch(epoch, train_stats, val_stats):
            live.step = epoch  # curves are indexed by epoch, 1-based
            for split, stats in (("train", train_stats), ("val", val_stats)):
                for name, value in vars(stats).items():
                    live.log_metric(f"{split}/{name}", value)
            live.make_summary()

        live.summary["kept_epoch"] = train_on(log_epoch)  # the epoch whose weights are saved (`train.keep`)
        live.summary["run"] = provenance(device, params.train.precision)
        live.make_summary()
    save_weights(paths.VAE, model.state_dict(), config.to_dict())
    replace_dir(paths.TRAIN_LIVE_IN_PROGRESS, paths.TRAIN_LIVE)
    checkpoint.remove()

if __name__ == "__main__":
    run_stage(main)

"""Training loop: the whole training set lives on the device as one tensor; batches are index slices.

No per-sample Python work and no host syncs inside an epoch: losses are summed on the device and
read once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from vaepipe.data import binarize
from vaepipe.errors import PipelineError
from vaepipe.model import VAE
from vaepipe.objectives import neg_elbo
from vaepipe.params import TrainParams
from vaepipe.runtime import generator

EVAL_BATCH = 2000


class TrainingError(PipelineError):
    pass


def split_train_val(images: torch.Tensor, val_size: int, seed: int, train_subset: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random hold-out of `val_size` images; `train_subset` > 0 keeps only that many for training."""
    if val_size >= len(images):
        raise PipelineError(f"params.yaml: `train.val_size` is {val_size} but the training set has only "
                            f"{len(images)} images")
    order = torch.randperm(len(images), generator=generator(torch.device("cpu"), seed))
    val, train = images[order[:val_size]], images[order[val_size:]]
    if train_subset:
        train = train[:train_subset]
    return train, val


@dataclass
class EpochStats:
    neg_elbo: float
    recon: float
    kl: float


@torch.no_grad()
def validation_stats(model: VAE, val_x: torch.Tensor, beta: float, seed: int) -> EpochStats:
    """Single-sample ELBO on the validation set, with the same noise every epoch so curves compare."""
    model.eval()
    gen = generator(val_x.device, seed)
    totals = torch.zeros(3, device=val_x.device)
    for start in range(0, len(val_x), EVAL_BATCH):
        x = val_x[start:start + EVAL_BATCH]
        noise = torch.randn(len(x), model.config.latent_dim, generator=gen, device=x.device)
        logits, mu, logvar = model(x, noise)
        totals += torch.stack(neg_elbo(logits, x, mu, logvar, beta)) * len(x)
    return EpochStats(*(totals / len(val_x)).tolist())


def train(model: VAE, train_x: torch.Tensor, val_x: torch.Tensor, params: TrainParams, seed: int,
          on_epoch_end: Callable[[int, EpochStats, EpochStats], None]) -> None:
    """Fit `model` in place. `train_x` holds grey levels; `val_x` the validation targets (already binarised
    if training is). Calls `on_epoch_end(epoch, train_stats, val_stats)` after each epoch."""
    device = train_x.device
    gen = generator(device, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    steps_per_epoch = math.ceil(len(train_x) / params.batch_size)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs * steps_per_epoch)
                 if params.lr_schedule == "cosine" else None)
    latent_dim = model.config.latent_dim
    bar = tqdm(range(1, params.epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        totals = torch.zeros(3, device=device)
        order = torch.randperm(len(train_x), generator=gen, device=device)
        for start in range(0, len(train_x), params.batch_size):
            x = binarize(train_x[order[start:start + params.batch_size]], params.binarize, gen)
            noise = torch.randn(len(x), latent_dim, generator=gen, device=device)
            logits, mu, logvar = model(x, noise)
            loss, recon, kl = neg_elbo(logits, x, mu, logvar, params.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            totals += torch.stack((loss, recon, kl)).detach() * len(x)
        train_stats = EpochStats(*(totals / len(train_x)).tolist())
        if not math.isfinite(train_stats.neg_elbo):
            raise TrainingError(f"training diverged: the loss became {train_stats.neg_elbo} in epoch {epoch}; "
                                f"lower `train.lr` (now {params.lr})")
        val_stats = validation_stats(model, val_x, params.beta, seed)
        bar.set_postfix(train=f"{train_stats.neg_elbo:.2f}", val=f"{val_stats.neg_elbo:.2f}")
        on_epoch_end(epoch, train_stats, val_stats)

"""Training loop: the whole training set lives on the device as one tensor; batches are index slices."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from vaepipe.errors import PipelineError
from vaepipe.gradients import ELBOGradient
from vaepipe.model import VAE
from vaepipe.objectives import neg_elbo
from vaepipe.params import TrainParams
from vaepipe.runtime import generator

EVAL_BATCH = 2000
ALIGN_FLOATS = 16  # 64 bytes


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


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Make every parameter, and its gradient, a view into one flat tensor; return that tensor.

    Each view starts on a 64-byte boundary (unaligned matrices slow the matrix multiplies down);
    the padding between them has zero gradient, so Adam leaves it at zero.
    """
    params = list(model.parameters())
    offsets, end = [], 0
    for p in params:
        offsets.append(end)
        end += -(-p.numel() // ALIGN_FLOATS) * ALIGN_FLOATS
    flat = torch.zeros(end, dtype=params[0].dtype, device=params[0].device)
    flat.grad = torch.zeros_like(flat)
    for p, offset in zip(params, offsets):
        view = slice(offset, offset + p.numel())
        flat[view] = p.detach().reshape(-1)
        p.data = flat[view].view_as(p)
        p.grad = flat.grad[view].view_as(p)
    return flat


class Trainer:
    """Adam on the negative ELBO, one epoch at a time, with the whole training set on the device.

    A step does no per-sample Python work, allocates its batch and noise in place and never waits for
    the device: each step's (loss, recon, kl) is kept on the device and read once per epoch.
    """

    def __init__(self, model: VAE, train_x: torch.Tensor, params: TrainParams, seed: int):
        self.model, self.train_x, self.params = model, train_x, params
        device = train_x.device
        self.gen = generator(device, seed)
        # Adam is elementwise, so one flat tensor gives the same updates as per-layer tensors, in one
        # fused kernel and without a Python loop over parameters.
        self.flat_params = flatten_parameters(model)
        self.optimizer = torch.optim.Adam([self.flat_params], lr=params.lr, fused=True)
        self.elbo_gradient = ELBOGradient(model, params.beta)
        self.steps_per_epoch = math.ceil(len(train_x) / params.batch_size)
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=params.epochs * self.steps_per_epoch) if params.lr_schedule == "cosine" else None)
        batch = min(params.batch_size, len(train_x))
        self.batch = torch.empty(batch, train_x.shape[1], device=device)
        self.uniform = torch.empty_like(self.batch)
        self.noise = torch.empty(batch, model.config.latent_dim, device=device)
        self.epoch = 0

    def run_epoch(self) -> EpochStats:
        """One pass over the training set in a fresh random order; the images' mean losses."""
        self.epoch += 1
        self.model.train()
        size, n = self.params.batch_size, len(self.train_x)
        step_losses = torch.empty(self.steps_per_epoch, 3, device=self.train_x.device)
        order = torch.randperm(n, generator=self.gen, device=self.train_x.device)
        for step, start in enumerate(range(0, n, size)):
            index = order[start:start + size]
            x = torch.index_select(self.train_x, 0, index, out=self.batch[:len(index)])
            if self.params.binarize == "dynamic":
                # Bernoulli(grey) per pixel: u < grey with u ~ U[0, 1), drawn into a reused buffer.
                x = torch.lt(self.uniform[:len(index)].uniform_(generator=self.gen), x, out=x)
            noise = self.noise[:len(index)].normal_(generator=self.gen)
            step_losses[step] = self.elbo_gradient(x, noise)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
        self._check_finite(step_losses)
        sizes = torch.full((self.steps_per_epoch, 1), float(size), device=step_losses.device)
        sizes[-1] = n - size * (self.steps_per_epoch - 1)
        return EpochStats(*((step_losses * sizes).sum(0) / n).tolist())

    def _check_finite(self, step_losses: torch.Tensor) -> None:
        bad = (~torch.isfinite(step_losses[:, 0])).nonzero()
        if len(bad):
            step = int(bad[0])
            raise TrainingError(
                f"training diverged: the loss became {step_losses[step, 0].item()} in epoch {self.epoch}, "
                f"step {step + 1} of {self.steps_per_epoch}; lower `train.lr` (now {self.params.lr:g})")


def train(model: VAE, train_x: torch.Tensor, val_x: torch.Tensor, params: TrainParams, seed: int,
          on_epoch_end: Callable[[int, EpochStats, EpochStats], None]) -> None:
    """Fit `model` in place. `train_x` holds grey levels; `val_x` the validation targets (already binarised
    if training is). Calls `on_epoch_end(epoch, train_stats, val_stats)` after each epoch."""
    trainer = Trainer(model, train_x, params, seed)
    bar = tqdm(range(1, params.epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        train_stats = trainer.run_epoch()
        val_stats = validation_stats(model, val_x, params.beta, seed)
        bar.set_postfix(train=f"{train_stats.neg_elbo:.2f}", val=f"{val_stats.neg_elbo:.2f}")
        on_epoch_end(epoch, train_stats, val_stats)

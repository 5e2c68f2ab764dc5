"""Training loop: the whole training set lives on the device as one tensor; batches are index slices."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from vaepipe.core.errors import PipelineError
from vaepipe.core.params import TrainParams, require_at_most
from vaepipe.core.runtime import autocast, compiling_if_worth_it, compute_dtype, generator
from vaepipe.data.datasets import train_val_indices
from vaepipe.vae.checkpoint import Checkpoint
from vaepipe.vae.distributed import World
from vaepipe.vae.gradients import ELBOGradient
from vaepipe.vae.model import VAE
from vaepipe.vae.objectives import negative_bound

EVAL_BATCH = 2000
ALIGN_FLOATS = 16  # 64 bytes


class TrainingError(PipelineError):
    pass


def split_train_val(images: torch.Tensor, val_size: int, seed: int, train_subset: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation images (`train_val_indices`); `train_subset` > 0 keeps only that many for training.
    The labels of the images, passed instead, are split alike."""
    train_idx, val_idx = train_val_indices(len(images), val_size, seed)
    val, train = images[val_idx], images[train_idx]
    require_at_most("train.train_subset", train_subset, len(train), "the training split (after validation)")
    if train_subset:
        train = train[:train_subset]
    return train, val


@dataclass
class EpochStats:
    neg_elbo: float
    recon: float
    kl: float


@torch.no_grad()
def validation_stats(model: VAE, val_x: torch.Tensor, beta: float, seed: int, val_labels: torch.Tensor | None = None
                     ) -> EpochStats:
    """Single-sample ELBO on the validation set, with the same noise every epoch so curves compare (of
    log p(x|y), for a conditional model given the images' labels)."""
    model.eval()
    gen = generator(val_x.device, seed)
    totals = torch.zeros(3, device=val_x.device)
    for start in range(0, len(val_x), EVAL_BATCH):
        x = val_x[start:start + EVAL_BATCH]
        labels = None if val_labels is None else val_labels[start:start + EVAL_BATCH]
        noise = torch.randn(len(x), model.config.latent_dim, generator=gen, device=x.device)
        totals += torch.stack(negative_bound(model, x, noise, beta, "elbo", labels)) * len(x)
    return EpochStats(*(totals / len(val_x)).tolist())


def uses_hand_written_gradient(params: TrainParams) -> bool:
    """The fast path (vaepipe.vae.gradients) covers the MLP with a normal prior and the one-sample ELBO, conditional or not."""
    return params.arch == "mlp" and params.prior == "normal" and params.objective == "elbo" and params.samples == 1


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


def fused_adam_step(optimizer: torch.optim.Adam) -> None:
    """`optimizer.step()` of an `Adam(fused=True)` over one tensor, calling its fused kernel directly: the same
    arithmetic and state (tests/test_training.py compares the bytes) without `Optimizer.step`'s hooks, profiler
    scope and per-call checks, which took ~130 us a call here against the kernel's ~195 us for the canonical
    model's 653k parameters."""
    group = optimizer.param_groups[0]
    (param,) = group["params"]
    state = optimizer.state[param]
    if not state:  # what Adam.step sets up on its first call (a fused Adam keeps its step count on the device)
        state.update(step=torch.zeros((), dtype=torch.float32, device=param.device),
                     exp_avg=torch.zeros_like(param, memory_format=torch.preserve_format),
                     exp_avg_sq=torch.zeros_like(param, memory_format=torch.preserve_format))
    state["step"] += 1
    beta1, beta2 = group["betas"]
    torch._fused_adam_([param.detach()], [param.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                       amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], maximize=False)


class Trainer:
    """Adam on the negative ELBO (or the IWAE bound), one epoch at a time, with the whole training set on
    the device, its matrix multiplies in `params.precision` (float32 weights and Adam state either way).
    The gradient is the hand-written one (vaepipe.vae.gradients) where it applies, autograd's otherwise; `hand_written=False` forces autograd (the parity test compares the two). A conditional model
    trains on the images' `train_labels` [N] (on the device too). In a `world` of several processes, each computes
    its share of every batch and the gradients are summed (vaepipe.vae.distributed).

    A step does no per-sample Python work, allocates its batch and noise in place and never waits for
    the device: each step's (loss, recon, kl) is kept on the device and read once per epoch.
    """

    def __init__(self, model: VAE, train_x: torch.Tensor, params: TrainParams, seed: int,
                 hand_written: bool | None = None, train_labels: torch.Tensor | None = None, world: World = World()):
        self.model, self.train_x, self.params, self.train_labels, self.world = model, train_x, params, train_labels, world
        device = train_x.device
        self.seed, self.gen = seed, generator(device, seed)
        # Adam is elementwise, so one flat tensor gives the same updates as per-layer tensors, in one
        # fused kernel and without a Python loop over parameters.
        self.flat_params = flatten_parameters(model)
        self.optimizer = torch.optim.Adam([self.flat_params], lr=params.lr, fused=True)
        if hand_written is None:
            hand_written = uses_hand_written_gradient(params)
        self.dtype = compute_dtype(params.precision, device)
        self.elbo_gradient = ELBOGradient(model, self.dtype) if hand_written else None
        self.steps_per_epoch = math.ceil(len(train_x) / params.batch_size)
        batch = min(params.batch_size, len(train_x))
        # Images in each step's batch, and this process's share of them (the last batch may be smaller).
        sizes = [batch] * (self.steps_per_epoch - 1) + [len(train_x) - batch * (self.steps_per_epoch - 1)]
        shares = [len(range(n)[world.share(n)]) for n in sizes]
        if min(shares) == 0:
            raise TrainingError(f"`train.nproc` is {world.size}, more than the {sizes[-1]} image(s) of an epoch's last "
                                "batch (a process computes at least one); change `train.batch_size` or `train.train_subset`")
        self.batch_sizes, self.share_sizes = (torch.tensor(s, dtype=torch.float32, device=device)[:, None]
                                              for s in (sizes, shares))
        world.broadcast(self.flat_params)  # every process starts from process 0's weights, as DDP does
        self.batch = torch.empty(batch, train_x.shape[1], device=device)
        self.uniform = torch.empty_like(self.batch)
        # The hand-written path takes one sample an image; autograd's takes [samples, batch, latent_dim].
        samples = () if hand_written else (params.samples,)
        self.noise = torch.empty(*samples, batch, model.config.latent_dim, device=device)
        self.warmup_steps = round(params.kl_warmup * params.epochs * self.steps_per_epoch)
        self.epoch = 0

    def lr_at(self, step: int) -> float:
        """Learning rate for the 0-based global `step`: `lr`, or with `cosine` annealed from it towards 0 over all steps."""
        if self.params.lr_schedule == "constant":
            return self.params.lr
        return self.params.lr * (1 + math.cos(math.pi * step / (self.params.epochs * self.steps_per_epoch))) / 2

    def beta_at(self, step: int) -> float:
        """KL weight for the 0-based global `step`: ramps linearly up to `beta` over the warm-up, then stays."""
        if step >= self.warmup_steps:
            return self.params.beta
        return self.params.beta * (step + 1) / self.warmup_steps

    def run_epoch(self) -> EpochStats:
        """One pass over the training set in a fresh random order; the images' mean losses."""
        self.epoch += 1
        self.model.train()
        size, n = self.params.batch_size, len(self.train_x)
        # Per step, this process's mean (loss, recon, kl) over its share of the batch.
        step_losses = torch.empty(self.steps_per_epoch, 3, device=self.train_x.device)
        order = torch.randperm(n, generator=self.gen, device=self.train_x.device)
        first_step = (self.epoch - 1) * self.steps_per_epoch
        for step, start in enumerate(range(0, n, size)):
            index = order[start:start + size]
            x = torch.index_select(self.train_x, 0, index, out=self.batch[:len(index)])
            if self.params.binarize == "dynamic":
                # Bernoulli(grey) per pixel: u < grey with u ~ U[0, 1), drawn into a reused buffer.
                x = torch.lt(self.uniform[:len(index)].uniform_(generator=self.gen), x, out=x)
            noise = self.noise[..., :len(index), :].normal_(generator=self.gen)
            beta = self.beta_at(first_step + step)
            self.optimizer.param_groups[0]["lr"] = self.lr_at(first_step + step)
            labels = None if self.train_labels is None else self.train_labels[index]
            # This process's rows of the batch; all of them when it is alone.
            share = self.world.share(len(index))
            x, noise, labels = x[share], noise[..., share, :], None if labels is None else labels[share]
            step_losses[step] = (self.elbo_gradient(x, noise, beta, labels) if self.elbo_gradient
                                 else self._autograd_step(x, noise, beta, labels))
            if self.world.size > 1:  # the share's mean gradient, weighted into the whole batch's
                self.world.sum(self.flat_params.grad.mul_(len(x) / len(index)))
            fused_adam_step(self.optimizer)
        step_sums = self.world.sum(step_losses * self.share_sizes)
        self._check_finite(step_sums / self.batch_sizes)
        _, recon, kl = (step_sums.sum(0) / n).tolist()
        # Weighted by the final beta, not the warm-up's, so epochs compare with each other and with validation.
        return EpochStats(neg_elbo=recon + self.params.beta * kl, recon=recon, kl=kl)

    def _autograd_step(self, x: torch.Tensor, noise: torch.Tensor, beta: float, labels: torch.Tensor | None
                       ) -> torch.Tensor:
        self.flat_params.grad.zero_()  # backward accumulates into the parameters' views of it
        # bf16: autocast runs the layers in bf16 on float32 weights; negative_bound sums in float32.
        with autocast(self.dtype, x.device):
            loss, recon, kl = negative_bound(self.model, x, noise, beta, self.params.objective, labels)
        loss.backward()
        return torch.stack([loss, recon, kl]).detach()

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything the next epoch depends on: weights, Adam moments, RNG states, epoch (the lr and beta follow from it)."""
        optimizer = self.optimizer.state_dict()
        adam = optimizer["state"][0]
        tensors = {"parameters": self.flat_params, "adam.step": adam["step"], "adam.exp_avg": adam["exp_avg"],
                   "adam.exp_avg_sq": adam["exp_avg_sq"], "rng.train": self.gen.get_state(),
                   "rng.torch": torch.get_rng_state()}
        meta = {"epoch": self.epoch, "adam.param_groups": optimizer["param_groups"], "device": self.gen.device.type}
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        with torch.no_grad():
            self.flat_params.copy_(tensors["parameters"])
        self.optimizer.load_state_dict({
            "state": {0: {name: tensors[f"adam.{name}"] for name in ("step", "exp_avg", "exp_avg_sq")}},
            "param_groups": meta["adam.param_groups"]})
        self.epoch = meta["epoch"]
        if self.resumes_on_another_device(meta):
            # A CPU generator's state means nothing to a CUDA one's (and back): the remaining epochs draw
            # from a seed of their own, so such a run is reproducible, though not an uninterrupted run's twin.
            self.gen.manual_seed(self.seed + self.epoch)
        else:
            self.gen.set_state(tensors["rng.train"])
        torch.set_rng_state(tensors["rng.torch"])

    def resumes_on_another_device(self, meta: dict) -> bool:
        return meta.get("device", self.gen.device.type) != self.gen.device.type

    def _check_finite(self, step_losses: torch.Tensor) -> None:
        bad = (~torch.isfinite(step_losses[:, 0])).nonzero()
        if len(bad):
            step = int(bad[0])
            raise TrainingError(
                f"training diverged: the loss became {step_losses[step, 0].item()} in epoch {self.epoch}, "
                f"step {step + 1} of {self.steps_per_epoch}; lower `train.lr` (now {self.params.lr:g})")


def image_passes(images: int, params: TrainParams) -> int:
    """The image passes of training on `images` (what decides whether it compiles: `compiling_if_worth_it`)."""
    return images * params.epochs * params.samples


def train(model: VAE, train_x: torch.Tensor, val_x: torch.Tensor, params: TrainParams, seed: int,
          on_epoch_end: Callable[[int, EpochStats, EpochStats], None], checkpoint: Checkpoint | None = None,
          labels: tuple[torch.Tensor, torch.Tensor] | None = None, world: World = World()) -> int:
    """Fit `model` in place and return the epoch whose weights it ends with. `train_x` holds grey levels;
    `val_x` the validation targets (already binarised if training is). Calls `on_epoch_end(epoch,
    train_stats, val_stats)` for every epoch, in order. A conditional model takes `labels`: those of the
    training and of the validation images.

    The epoch with the lowest validation -ELBO is remembered; with `keep: best` the model ends with its
    weights, and with `patience` > 0 training stops that many epochs after it if none has been better.

    With a `checkpoint`, the state is saved after every epoch, and a usable saved state is resumed from:
    the finished epochs are replayed to `on_epoch_end` from the checkpoint, then training continues
    exactly as an uninterrupted run would.

    In a `world` of several processes (torchrun), every process calls this with the same arguments and ends
    with the same weights; only the main one reports progress and writes the checkpoint.
    """
    train_labels, val_labels = labels or (None, None)
    trainer = Trainer(model, train_x, params, seed, train_labels=train_labels, world=world)
    history: list = []  # per finished epoch: (train stats, validation stats) as dicts, JSON in the checkpoint
    best_params, best = trainer.flat_params.detach().clone(), {"epoch": 0, "val_neg_elbo": math.inf}
    saved = checkpoint.load() if checkpoint else None
    if saved:
        tensors, meta = saved
        trainer.load_state_dict(tensors, meta)
        best_params.copy_(tensors["best_parameters"])
        history, best = meta["history"], meta["best"]
        if world.is_main:
            moved = (f" (saved on {meta['device']}, going on on {train_x.device.type} with fresh noise)"
                     if trainer.resumes_on_another_device(meta) else "")
            print(f"resuming from {checkpoint.path} after epoch {trainer.epoch} of {params.epochs}{moved}")
    for epoch, (train_stats, val_stats) in enumerate(history, start=1):
        on_epoch_end(epoch, EpochStats(**train_stats), EpochStats(**val_stats))
    bar = tqdm(range(trainer.epoch + 1, params.epochs + 1), desc="train", unit="epoch",
               initial=trainer.epoch, total=params.epochs, disable=not world.is_main)
    # Decided by the whole run, so a resumed run computes as the uninterrupted one; validation is not counted.
    with compiling_if_worth_it(image_passes(len(train_x), params)):
        for epoch in bar:
            if params.patience and trainer.epoch - best["epoch"] >= params.patience:
                if world.is_main:
                    print(f"stopping after epoch {trainer.epoch}: no better validation -ELBO in {params.patience} "
                          f"epochs since epoch {best['epoch']}")
                break
            train_stats = trainer.run_epoch()
            val_stats = validation_stats(model, val_x, params.beta, seed, val_labels)
            if val_stats.neg_elbo < best["val_neg_elbo"]:
                best = {"epoch": epoch, "val_neg_elbo": val_stats.neg_elbo}
                best_params.copy_(trainer.flat_params)
            history.append((vars(train_stats), vars(val_stats)))
            if checkpoint and world.is_main:
                tensors, meta = trainer.state_dict()
                checkpoint.save({**tensors, "best_parameters": best_params}, {**meta, "history": history, "best": best})
            bar.set_postfix(train=f"{train_stats.neg_elbo:.2f}", val=f"{val_stats.neg_elbo:.2f}")
            on_epoch_end(epoch, train_stats, val_stats)
    world.require_same(trainer.flat_params, "the trained model")
    if params.keep == "last" or best["epoch"] == 0:  # 0: no finite validation -ELBO to choose by
        return trainer.epoch
    with torch.no_grad():
        trainer.flat_params.copy_(best_params)
    return best["epoch"]

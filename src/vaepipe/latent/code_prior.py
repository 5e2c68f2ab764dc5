"""What the learned priors over the VAE's codes share: codes standardised per dimension, and a seeded Adam fit of
the model's loss on random minibatches (`fit`). Each kind is its own class: vaepipe.latent.code_flow and
vaepipe.latent.code_diffusion.

The codes are the posterior means of the training images, as for the `gmm` sampler: decoded, they are the
reconstructions, so a prior that matches their distribution makes samples as good as reconstructions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Posterior means of an inactive latent unit hardly vary; dividing by their spread would blow its noise up.
MIN_STD = 1e-3


class CodePrior(nn.Module):
    """A density over `dim`-dimensional codes, trained on standardised codes by minimising `loss`."""

    def __init__(self, dim: int, temperature: float = 1.0):
        super().__init__()
        self.dim = dim
        self.temperature = temperature  # the spread of the noise a sample starts from, scaled
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The training loss of a batch of standardised codes (its noise drawn from `gen`)."""
        raise NotImplementedError

    def sample_standardised(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n standardised codes from noise of standard deviation `temperature`."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n codes [n, dim] on the CPU, from `gen` (a CPU generator)."""
        self.eval()
        return self.sample_standardised(n, gen) * self.scale + self.shift

    def standardise(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes - self.shift) / self.scale


def fit(prior: CodePrior, codes: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int) -> None:
    """Fit `prior` to `codes` [N, dim] (CPU) by Adam on random minibatches, the learning rate annealed to 0 (cosine)."""
    gen = torch.Generator().manual_seed(seed)
    prior.shift.copy_(codes.mean(0))
    prior.scale.copy_(codes.std(0).clamp_min(MIN_STD))
    x = prior.standardise(codes)
    optimiser = torch.optim.Adam(prior.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    prior.train()
    for _ in range(steps):
        loss = prior.loss(x[torch.randint(len(x), (batch_size,), generator=gen)], gen)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    prior.eval()

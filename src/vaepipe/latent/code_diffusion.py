"""A denoising diffusion model over the VAE's codes (Ho et al. 2020, on codes as in Vahdat et al. 2021's latent
score-based models): a small residual MLP learns the noise added to standardised codes at a random level of a
cosine schedule (Nichol & Dhariwal 2021); sampling runs DDIM's deterministic updates (Song et al. 2021) from
Gaussian noise down `sample_steps` levels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaepipe.latent.code_prior import CodePrior

# The cosine schedule's offset s, and the largest noise level sampled, which keeps alpha_bar > 0 (at t = 1 the
# signal is gone and its scale would divide by 0).
COSINE_OFFSET, T_MAX = 0.008, 0.999
# Early DDIM steps divide the denoiser's error by sqrt(alpha_bar) ~ 0.002; unclipped, the estimate of the clean
# code flung 1 % of the samples of a 2-D mixture dozens of standard deviations out. Standardised codes lie within it.
CLEAN_BOUND = 6.0
TIME_FREQUENCIES = 16


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """The share of the signal's variance left at noise level t in [0, 1]."""
    f = lambda u: torch.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(torch.zeros_like(t))


class Denoiser(nn.Module):
    """eps(x_t, t): residual MLP blocks, the noise level added to each block's input through its sinusoidal
    embedding."""

    def __init__(self, dim: int, hidden: int, blocks: int):
        super().__init__()
        self.register_buffer("frequencies", torch.exp(torch.linspace(0, math.log(1000), TIME_FREQUENCIES)))
        self.time = nn.Sequential(nn.Linear(2 * TIME_FREQUENCIES, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.frequencies
        time = self.time(torch.cat([angles.sin(), angles.cos()], 1))
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h + time)
        return self.out(h)


class CodeDiffusion(CodePrior):
    def __init__(self, dim: int, hidden: int, blocks: int, sample_steps: int, temperature: float = 1.0):
        super().__init__(dim, temperature)
        self.denoiser = Denoiser(dim, hidden, blocks)
        self.sample_steps = sample_steps

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        t = torch.rand(len(x), generator=gen) * T_MAX
        noise = torch.randn(x.shape, generator=gen)
        a = alpha_bar(t)[:, None]
        return (self.denoiser(a.sqrt() * x + (1 - a).sqrt() * noise, t) - noise).pow(2).sum(1).mean()

    def sample_standardised(self, n: int, gen: torch.Generator) -> torch.Tensor:
        x = self.temperature * torch.randn(n, self.dim, generator=gen)
        levels = torch.linspace(T_MAX, 0, self.sample_steps + 1)
        for t, t_next in zip(levels[:-1], levels[1:]):
            a, a_next = alpha_bar(t), alpha_bar(t_next)
            noise = self.denoiser(x, t.expand(n))
            clean = ((x - (1 - a).sqrt() * noise) / a.sqrt()).clamp(-CLEAN_BOUND, CLEAN_BOUND)
            noise = (x - a.sqrt() * clean) / (1 - a).sqrt()  # the noise that the clipped estimate implies
            x = a_next.sqrt() * clean + (1 - a_next).sqrt() * noise
        return x

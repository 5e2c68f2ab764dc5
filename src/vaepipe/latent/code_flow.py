"""A normalising flow over the VAE's codes: RealNVP's affine couplings (Dinh et al. 2017), each one scaling and
shifting half of the dimensions by an MLP of the other half, the halves swapped by a fixed permutation between
couplings. Exact log-density, and samples in one pass.
"""

from __future__ import annotations

import torch
from torch import nn

from vaepipe.latent.code_prior import CodePrior
from vaepipe.vae.objectives import LOG_2PI


class Coupling(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.kept = dim // 2
        self.net = nn.Sequential(nn.Linear(self.kept, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * (dim - self.kept)))
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = self.net(kept).chunk(2, dim=1)
        return torch.tanh(log_scale), shift  # a bounded log-scale keeps early steps stable

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> y (towards the noise) and log |det dy/dx|."""
        kept, moved = x[:, : self.kept], x[:, self.kept:]
        log_scale, shift = self._scale_shift(kept)
        return torch.cat([kept, moved * log_scale.exp() + shift], 1), log_scale.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept, moved = y[:, : self.kept], y[:, self.kept:]
        log_scale, shift = self._scale_shift(kept)
        return torch.cat([kept, (moved - shift) * (-log_scale).exp()], 1)


class CodeFlow(CodePrior):
    def __init__(self, dim: int, hidden: int, blocks: int, seed: int = 0, temperature: float = 1.0):
        super().__init__(dim, temperature)
        self.couplings = nn.ModuleList(Coupling(dim, hidden) for _ in range(blocks))
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("permutations", torch.stack([torch.randperm(dim, generator=gen) for _ in range(blocks)]))

    def log_prob_standardised(self, x: torch.Tensor) -> torch.Tensor:
        log_det = torch.zeros(len(x))
        for coupling, permutation in zip(self.couplings, self.permutations):
            x, step_log_det = coupling(x[:, permutation])
            log_det = log_det + step_log_det
        return -0.5 * (LOG_2PI + x.pow(2)).sum(1) + log_det

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(code), exact, [N, dim] -> [N]."""
        return self.log_prob_standardised(self.standardise(codes)) - self.scale.log().sum()

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return -self.log_prob_standardised(x).mean()

    def sample_standardised(self, n: int, gen: torch.Generator) -> torch.Tensor:
        x = self.temperature * torch.randn(n, self.dim, generator=gen)
        for coupling, permutation in zip(reversed(self.couplings), reversed(self.permutations)):
            x = coupling.inverse(x)[:, torch.argsort(permutation)]
        return x

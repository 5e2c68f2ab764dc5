"""The negative ELBO and the importance-sampled likelihood bound, in nats per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image, summed over pixels; `x` may be grey (then it is a cross-entropy)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, in closed form, summed over latents."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def neg_elbo(logits, x, mu, logvar, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch means of (recon + beta * KL, recon, KL)."""
    recon = bernoulli_nll(logits, x).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return recon + beta * kl, recon, kl


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    return nats / (dims * math.log(2))

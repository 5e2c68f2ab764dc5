"""The negative ELBO and the importance-sampled likelihood bound, in nats per image."""

from __future__ import annotations

import math

import torch

from vaepipe.core.runtime import compiled

LOG_2PI = math.log(2 * math.pi)


def _bernoulli_nll_per_pixel(logits: torch.Tensor, x: torch.Tensor, exp_neg_abs: torch.Tensor) -> torch.Tensor:
    # softplus(l) - x*l, with softplus(l) = max(l, 0) + log(1 + e^-|l|) (stable for any l).
    # Written with exp and log because torch.compile fuses these into one vectorised loop, whereas
    # eager softplus/log1p cost ~5 ns a pixel on CPU: as much as the decoder's matrix multiply.
    return logits.clamp(min=0) - logits * x + torch.log(1 + exp_neg_abs)


@compiled(dynamic=True)
def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image, summed over pixels; `x` may be grey (then it is a cross-entropy).

    `x` broadcasts against `logits`, e.g. one image against many samples of z. Computed and returned in
    float32 whatever the logits' precision: bfloat16 ones are widened inside the fused loop, which is faster
    than a separate `.float()` pass (that took 5.7 of the evaluate stage's 26 s of scoring, under cProfile).
    """
    logits = logits.float()
    return _bernoulli_nll_per_pixel(logits, x, torch.exp(-logits.abs())).sum(-1)


@compiled(dynamic=True)
def bernoulli_nll_and_grad(logits: torch.Tensor, x: torch.Tensor, scale: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's total -log p(x|z), and the gradient of `scale` times it w.r.t. the logits, in one pass.
    Computed in float32 whatever the logits' precision (bfloat16 ones are widened in the loop); the gradient
    is returned in the logits' precision, the total in float32."""
    dtype, logits = logits.dtype, logits.float()
    exp_neg_abs = torch.exp(-logits.abs())
    # sigmoid(l) from the same exponential: 1 / (1 + e^-l) for l >= 0, e^l / (1 + e^l) otherwise.
    sigmoid = torch.where(logits >= 0, 1.0, exp_neg_abs) / (1 + exp_neg_abs)
    return _bernoulli_nll_per_pixel(logits, x, exp_neg_abs).sum(), ((sigmoid - x) * scale).to(dtype)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, in closed form, summed over latents."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def negative_bound(model, x: torch.Tensor, noise: torch.Tensor, beta: float, objective: str,
                   labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch means of (loss, recon, KL) for any model of the family (vaepipe.vae.model.VAE), differentiable.

    `noise` [S, B, latent_dim] gives S samples z = mu + noise * std per image. `elbo`: the -ELBO averaged
    over the samples, recon + beta * KL. `iwae`: the importance-weighted bound of Burda et al. (2015),
    -log (1/S) sum_s p(x|z_s) (p(z_s) / q(z_s|x))^beta, tighter than the ELBO for S > 1. A conditional
    model takes the images' `labels`, and the bound is of log p(x|y).
    """
    # float() undoes autocast's bf16 outputs: the sampling, the likelihood and the sums stay float32
    # (bernoulli_nll widens the logits itself).
    mu, logvar = (t.float() for t in model.encode(x, labels))
    z = mu + noise * torch.exp(0.5 * logvar)
    log_px = -bernoulli_nll(model.decode(z, labels), x)  # [S, B]
    recon = -log_px.mean()
    if objective == "elbo":
        kl = model.prior.kl(mu, logvar, z, noise).mean()
        return recon + beta * kl, recon, kl
    log_q = -0.5 * (LOG_2PI + logvar + noise.pow(2)).sum(-1)  # (z - mu)^2 / var is noise^2
    log_ratio = model.prior.log_prob(z) - log_q
    log_w = log_px + beta * log_ratio
    bound = torch.logsumexp(log_w, 0) - math.log(len(noise))
    return -bound.mean(), recon, -log_ratio.mean()


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    return nats / (dims * math.log(2))

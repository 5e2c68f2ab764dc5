"""Test-set likelihood: the ELBO and the importance-sampled bound of Burda et al. (2015).

    log p(x) >= log (1/k) sum_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)

The bound tightens as k grows and is never looser than the ELBO (the k = 1 case, in expectation).
Images and samples are processed in chunks, so memory stays bounded even for k = 5000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaepipe.core.runtime import compiling_if_worth_it
from vaepipe.vae.model import VAE
from vaepipe.vae.objectives import LOG_2PI, bernoulli_nll

# Upper bound on decoder logits held at once (floats): 2**23 is 32 MiB.
MAX_LOGITS = 2**23


@dataclass
class LikelihoodBounds:
    """Per-image values in nats: IS estimate of -log p(x), and the ELBO's two terms."""

    nll: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.recon + self.kl


@torch.no_grad()
def likelihood_bounds(model: VAE, x: torch.Tensor, k: int, gen: torch.Generator | None,
                      max_logits: int = MAX_LOGITS, shared_noise: torch.Tensor | None = None) -> LikelihoodBounds:
    """IS-estimated NLL with `k` samples per image, under the model's own prior (exact log-density); recon
    is averaged over the same samples; KL is exact for the normal prior, else averaged over the samples.

    The noise eps (z = mu + eps * std) is drawn from `gen`, fresh for every image; or, given `shared_noise`
    [k, latent_dim], the same k draws serve every image, so that an image's values depend on it alone and
    not on which other images are scored with it.
    """
    model.eval()
    n, pixels = x.shape
    images_per_chunk = max(1, min(n, max_logits // (pixels * min(k, 64))))
    nll, recon, kl = (torch.empty(n, device=x.device) for _ in range(3))
    with compiling_if_worth_it(n * k):
        for start in range(0, n, images_per_chunk):
            xb = x[start:start + images_per_chunk]
            mu, logvar = (t.float() for t in model.encode(xb))  # float32 even under a bf16 autocast
            std = torch.exp(0.5 * logvar)
            exact_kl = model.prior.closed_form_kl(mu, logvar)  # None: averaged over the samples instead
            samples_per_chunk = max(1, max_logits // (pixels * len(xb)))
            log_mean_w = torch.full((len(xb),), -math.inf, device=x.device)
            recon_sum = torch.zeros(len(xb), device=x.device)
            kl_sum = torch.zeros(len(xb), device=x.device)
            for k_start in range(0, k, samples_per_chunk):
                kc = min(samples_per_chunk, k - k_start)
                if shared_noise is None:
                    eps = torch.randn(kc, *mu.shape, generator=gen, device=x.device)
                else:
                    eps = shared_noise[k_start:k_start + kc].to(x.device).unsqueeze(1).expand(kc, *mu.shape)
                z = mu + eps * std
                log_px = -bernoulli_nll(model.decode(z), xb)  # float32 sums of bf16 logits under autocast
                log_pz = model.prior.log_prob(z)
                # (z - mu)^2 / var is eps^2 by construction.
                log_qz = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
                log_w = log_px + log_pz - log_qz
                log_mean_w = torch.logaddexp(log_mean_w, torch.logsumexp(log_w, 0))
                recon_sum -= log_px.sum(0)
                if exact_kl is None:
                    kl_sum += (log_qz - log_pz).sum(0)
            sl = slice(start, start + len(xb))
            nll[sl] = math.log(k) - log_mean_w
            recon[sl] = recon_sum / k
            kl[sl] = kl_sum / k if exact_kl is None else exact_kl
    return LikelihoodBounds(nll=nll, recon=recon, kl=kl)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across images: Cov_x(E_q[z_u]) > threshold (Burda et al.)."""
    return int((mu.var(dim=0) > threshold).sum())

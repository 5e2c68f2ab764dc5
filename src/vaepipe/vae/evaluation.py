"""Test-set likelihood: the ELBO and the importance-sampled bound of Burda et al. (2015).

    log p(x) >= log (1/k) sum_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)

The bound tightens as k grows and is never looser than the ELBO (the k = 1 case, in expectation). It holds for
any proposal in place of q that covers the posterior: q with its standard deviations widened (`proposal_scale`
> 1) gives a tighter bound for the same k, since q, fitted by the ELBO's KL(q || p), is narrower than the posterior
and its importance weights are heavy-tailed (docs/results.md measures k and the scale).
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
# Draws of q itself for the ELBO's terms when the bound's proposal is wider than q.
ELBO_DRAWS = 16


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
                      max_logits: int = MAX_LOGITS, shared_noise: torch.Tensor | None = None,
                      proposal_scale: float = 1.0) -> LikelihoodBounds:
    """IS-estimated NLL with `k` samples per image from q with its standard deviations times `proposal_scale`,
    under the model's own prior (exact log-density). The ELBO's terms are averaged over draws of q itself: the
    same k samples when the scale is 1, else ELBO_DRAWS more. KL is exact for the normal prior.

    The noise eps (z = mu + eps * std) is drawn from `gen`, fresh for every image; or, given `shared_noise`
    [k, latent_dim], the same k draws serve every image, so that an image's values depend on it alone and
    not on which other images are scored with it.
    """
    model.eval()
    n, pixels = x.shape
    elbo_draws = 0 if proposal_scale == 1.0 else min(k, ELBO_DRAWS)
    images_per_chunk = max(1, min(n, max_logits // (pixels * min(k, 64))))
    nll, recon, kl = (torch.empty(n, device=x.device) for _ in range(3))

    def noise(start: int, count: int, shape: torch.Size) -> torch.Tensor:
        if shared_noise is None:
            return torch.randn(count, *shape, generator=gen, device=x.device)
        return shared_noise[start:start + count].to(x.device).unsqueeze(1).expand(count, *shape)

    with compiling_if_worth_it(n * (k + elbo_draws)):
        for start in range(0, n, images_per_chunk):
            xb = x[start:start + images_per_chunk]
            mu, logvar = (t.float() for t in model.encode(xb))  # float32 even under a bf16 autocast
            exact_kl = model.prior.closed_form_kl(mu, logvar)  # None: averaged over the samples instead
            samples_per_chunk = max(1, max_logits // (pixels * len(xb)))
            log_mean_w = torch.full((len(xb),), -math.inf, device=x.device)
            recon_sum = torch.zeros(len(xb), device=x.device)
            kl_sum = torch.zeros(len(xb), device=x.device)
            for k_start in range(0, k, samples_per_chunk):
                kc = min(samples_per_chunk, k - k_start)
                log_px, log_pz, log_rz = _log_densities(model, xb, mu, logvar, noise(k_start, kc, mu.shape),
                                                        proposal_scale)
                log_mean_w = torch.logaddexp(log_mean_w, torch.logsumexp(log_px + log_pz - log_rz, 0))
                if not elbo_draws:
                    recon_sum -= log_px.sum(0)
                    kl_sum += (log_rz - log_pz).sum(0)
            if elbo_draws:
                log_px, log_pz, log_qz = _log_densities(model, xb, mu, logvar, noise(0, elbo_draws, mu.shape), 1.0)
                recon_sum, kl_sum = -log_px.sum(0), (log_qz - log_pz).sum(0)
            sl = slice(start, start + len(xb))
            nll[sl] = math.log(k) - log_mean_w
            recon[sl] = recon_sum / (elbo_draws or k)
            kl[sl] = kl_sum / (elbo_draws or k) if exact_kl is None else exact_kl
    return LikelihoodBounds(nll=nll, recon=recon, kl=kl)


def _log_densities(model: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor,
                   scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(x|z), log p(z) and log r(z) [samples, images] at z = mu + eps * scale * std, where r is q with its
    standard deviations times `scale` (q itself at 1)."""
    z = mu + eps * (scale * torch.exp(0.5 * logvar))
    log_px = -bernoulli_nll(model.decode(z), x)  # float32 sums of bf16 logits under autocast
    # (z - mu)^2 / (scale^2 var) is eps^2 by construction.
    log_rz = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1) - mu.shape[-1] * math.log(scale)
    return log_px, model.prior.log_prob(z), log_rz


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across images: Cov_x(E_q[z_u]) > threshold (Burda et al.)."""
    return int((mu.var(dim=0) > threshold).sum())

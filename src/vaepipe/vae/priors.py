"""The priors p(z) of the model family, one class each behind one interface: the log-density, samples, and the
KL term of the ELBO (in closed form where there is one). PRIORS maps each `train.prior` choice to its class.

- `normal`: N(0, I).
- `mog`: a learned mixture of `components` diagonal Gaussians.
- `vamp`: the VampPrior (Tomczak & Welling 2018), the mixture of the encoder's posteriors at `components` learned
  pseudo-images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vaepipe.vae.objectives import LOG_2PI, gaussian_kl

# VampPrior pseudo-images start as faint noise, kept in [0, 1] by a hard tanh (Tomczak & Welling's recipe).
PSEUDO_INPUT_MEAN, PSEUDO_INPUT_STD = 0.05, 0.01

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Prior(nn.Module):
    """p(z) over `latent_dim` dimensions. Its parameters, if any, train with the model's."""

    title: str  # what it is, in words, for figure titles

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), exact, summed over the latent dimension: [..., latent_dim] -> [...]."""
        raise NotImplementedError

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n draws of z ~ p(z) on the CPU, from `gen` (a CPU generator)."""
        raise NotImplementedError

    def closed_form_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(q(z|x) || p(z)) per image when it has a closed form; None otherwise."""
        return None

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per image: the closed form where there is one, else the one-sample estimate
        log q(z|x) - log p(z) at the samples z = mu + noise * std, averaged over leading sample dims."""
        exact = self.closed_form_kl(mu, logvar)
        if exact is not None:
            return exact
        log_q = -0.5 * (LOG_2PI + logvar + noise.pow(2)).sum(-1)  # (z - mu)^2 / var is noise^2
        return (log_q - self.log_prob(z)).reshape(-1, len(mu)).mean(0)


class NormalPrior(Prior):
    title = "N(0, I)"

    def __init__(self, *, latent_dim: int, components: int, input_dim: int, encode: Encoder):
        super().__init__(latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=gen)

    def closed_form_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return gaussian_kl(mu, logvar)


class MixturePrior(Prior):
    """A mixture of diagonal Gaussians, whatever defines its components."""

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-weights [K], means and log-variances [K, latent_dim]."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        log_weights, means, logvars = (t.double() for t in self.components())
        # sum_d (z_d - m_kd)^2 / v_kd = [z^2, z] . [1 / v_k, -2 m_k / v_k] + sum_d m_kd^2 / v_kd: one matrix
        # product, so that scoring 5000 samples of 10,000 images against 500 components takes minutes, not
        # the memory and hours of [..., K, latent_dim] differences. In float64, because the terms nearly
        # cancel when a component is narrow; the log-sum-exp after it in the input's precision.
        precision, z64 = torch.exp(-logvars), z.double()
        weights = torch.cat([precision, -2 * means * precision], -1)  # [K, 2 latent_dim]
        squared = torch.cat([z64.pow(2), z64], -1) @ weights.T + (means.pow(2) * precision).sum(-1)
        components = -0.5 * (z.shape[-1] * LOG_2PI + logvars.sum(-1) + squared) + log_weights  # [..., K]
        return torch.logsumexp(components.to(z.dtype), -1)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        log_weights, means, logvars = (t.cpu() for t in self.components())
        component = torch.multinomial(log_weights.exp(), n, replacement=True, generator=gen)
        noise = torch.randn(n, self.latent_dim, generator=gen)
        return means[component] + noise * torch.exp(0.5 * logvars[component])


class MixtureOfGaussiansPrior(MixturePrior):
    def __init__(self, *, latent_dim: int, components: int, input_dim: int, encode: Encoder):
        super().__init__(latent_dim)
        self.title = f"learned {components}-component Gaussian mixture"
        # Means spread like draws from N(0, I), so the components start apart and the mixture near N(0, I).
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.log_softmax(self.logits, 0), self.means, self.logvars


class VampPrior(MixturePrior):
    def __init__(self, *, latent_dim: int, components: int, input_dim: int, encode: Encoder):
        super().__init__(latent_dim)
        self.title = f"VampPrior, {components} pseudo-inputs"
        self.encode = encode  # the model's encoder, whose posteriors at the pseudo-inputs are the components
        self.pseudo_inputs = nn.Parameter(PSEUDO_INPUT_MEAN + PSEUDO_INPUT_STD * torch.randn(components, input_dim))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # In float32 even under a bf16 autocast: the mixture's log-density subtracts nearly equal terms, and
        # bf16 components moved the pseudo-inputs' gradients by 16 % (tests/test_model_family.py).
        with torch.autocast(self.pseudo_inputs.device.type, enabled=False):
            means, logvars = self.encode(nn.functional.hardtanh(self.pseudo_inputs, 0.0, 1.0))
        return torch.full((len(means),), -math.log(len(means)), device=means.device), means, logvars


PRIORS: dict[str, type[Prior]] = {"normal": NormalPrior, "mog": MixtureOfGaussiansPrior, "vamp": VampPrior}

"""Where generated images' latent codes come from.

- `prior`: the model's own p(z): N(0, I), or the learned mixture of a `mog` or `vamp` model.
- `gmm`: a Gaussian mixture with full covariances fitted, after training, to the posterior means of the
  training images (Ghosh et al. 2020, "From variational to deterministic autoencoders"; pythae's
  `GaussianMixtureSampler`). It puts samples where the aggregate posterior has mass, not in the holes
  the N(0, I) prior leaves between the classes.
- `learned`: a density fitted to the training part's codes (params `code_prior`): a mixture of many Gaussians, a
  diffusion model (vaepipe.latent.code_diffusion) or a flow (vaepipe.latent.code_flow); each drawn code then makes
  `round_trips` trips through the VAE, replaced by the posterior mean of its decoded image. A trip moves a code
  that landed off the codes' thin manifold, where the decoder draws a blurred blend, onto it: the autoencoder's
  reconstructions are its fixed points (the Markov chain of Rezende et al. 2014, section 5, on the means).
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from vaepipe.core.params import CodePriorParams, Params
from vaepipe.data.datasets import train_val_indices
from vaepipe.latent.code_diffusion import CodeDiffusion
from vaepipe.latent.code_flow import CodeFlow
from vaepipe.latent.code_prior import fit
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import VAE


class CodeSampler(Protocol):
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n codes [n, latent_dim] on the CPU, from `gen` (a CPU generator)."""


class CodeMixture:
    """A Gaussian mixture fitted to codes by scikit-learn (k-means, then `em_iterations` of EM), sampled with a
    torch generator like the priors, each Gaussian's spread scaled by `temperature`."""

    def __init__(self, codes: np.ndarray, n_components: int, seed: int, em_iterations: int = 200,
                 temperature: float = 1.0):
        with warnings.catch_warnings():
            # Not converging within max_iter still gives a usable density; the fit is seeded either way.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.fitted = GaussianMixture(n_components=n_components, covariance_type="full", max_iter=em_iterations,
                                          random_state=seed).fit(codes)
        self.temperature = temperature
        self.weights = torch.from_numpy(self.fitted.weights_).float()
        self.means = torch.from_numpy(self.fitted.means_).float()
        self.scale_tril = torch.linalg.cholesky(torch.from_numpy(self.fitted.covariances_)).float()

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        noise = torch.randn(n, self.means.shape[1], 1, generator=gen)
        return self.means[component] + self.temperature * (self.scale_tril[component] @ noise).squeeze(-1)

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(code), exact, [N, dim] -> [N]."""
        return torch.from_numpy(self.fitted.score_samples(codes.double().numpy())).float()


def fit_code_prior(codes: torch.Tensor, params: CodePriorParams, seed: int) -> CodeSampler:
    """The `learned` sampler's density, fitted to `codes` [N, dim] (CPU) as `params.kind` says."""
    if params.kind == "mixture":
        return CodeMixture(codes.numpy(), params.components, seed, params.em_iterations, params.temperature)
    torch.manual_seed(seed)  # the networks' initial weights
    if params.kind == "diffusion":
        prior = CodeDiffusion(codes.shape[1], params.hidden, params.blocks, params.sample_steps, params.temperature)
    else:
        prior = CodeFlow(codes.shape[1], params.hidden, params.blocks, seed, params.temperature)
    fit(prior, codes, params.steps, params.batch_size, params.lr, seed)
    return prior


def fit_samplers(samplers: tuple[str, ...], model: VAE, train_images: torch.Tensor, params: Params
                 ) -> dict[str, CodeSampler]:
    """The densities of `samplers` that are fitted to codes: `gmm` to the codes of all `train_images`, `learned`
    to those of the training part only (`train.val_size` held out, as in training), so validation stays unseen."""
    device = next(model.parameters()).device
    codes = posterior_means(model, train_images.to(device))
    fitted = {}
    if "gmm" in samplers:
        fitted["gmm"] = CodeMixture(codes.numpy(), params.generate.gmm_components, params.seed)
    if "learned" in samplers:
        train_part, _ = train_val_indices(len(train_images), params.train.val_size, params.seed)
        fitted["learned"] = fit_code_prior(codes[train_part], params.code_prior, params.seed)
    return fitted


def round_trip(model: VAE, codes: torch.Tensor, trips: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """`codes` replaced `trips` times by the posterior means of their decoded images (on the CPU); a conditional
    model's codes with their `labels`."""
    device = next(model.parameters()).device
    labels = None if labels is None else labels.to(device)
    for _ in range(trips):
        codes = posterior_means(model, decode_probs(model, codes.to(device), labels), labels)
    return codes


def draw_codes(sampler: str, model: VAE, n: int, gen: torch.Generator, fitted: dict[str, CodeSampler],
               round_trips: int = 0) -> torch.Tensor:
    """n latent codes [n, latent_dim] on the CPU from `sampler` (`fitted` holds the densities of `gmm` and
    `learned`; the learned one's codes make `round_trips` trips through the model)."""
    if sampler == "prior":
        return model.prior.sample(n, gen)
    codes = fitted[sampler].sample(n, gen)
    return round_trip(model, codes, round_trips) if sampler == "learned" else codes


def sampler_title(sampler: str, model: VAE, gmm_components: int, code_prior: CodePriorParams) -> str:
    """What a sampler draws from, in words, for figure titles."""
    if sampler == "gmm":
        return f"{gmm_components}-component Gaussian mixture fitted to the training codes"
    if sampler == "learned":
        kind = {"mixture": f"{code_prior.components}-component Gaussian mixture",
                "diffusion": f"diffusion model ({code_prior.sample_steps} DDIM steps)",
                "flow": f"RealNVP flow ({code_prior.blocks} couplings)"}[code_prior.kind]
        return f"{kind} at temperature {code_prior.temperature:g}, then {code_prior.round_trips} round trips"
    return model.prior.title

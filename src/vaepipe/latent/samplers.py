"""Where generated images' latent codes come from.

- `prior`: the model's own p(z): N(0, I), or the learned mixture of a `mog` or `vamp` model.
- `gmm`: a Gaussian mixture with full covariances fitted, after training, to the posterior means of the
  training images (Ghosh et al. 2020, "From variational to deterministic autoencoders"; pythae's
  `GaussianMixtureSampler`). It puts samples where the aggregate posterior has mass, not in the holes
  the N(0, I) prior leaves between the classes.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from vaepipe.vae.model import VAE


class CodeMixture:
    """A Gaussian mixture fitted to codes by scikit-learn, sampled with a torch generator like the priors."""

    def __init__(self, codes: np.ndarray, n_components: int, seed: int):
        with warnings.catch_warnings():
            # Not converging within max_iter still gives a usable density; the fit is seeded either way.
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = GaussianMixture(n_components=n_components, covariance_type="full", max_iter=200,
                                     random_state=seed).fit(codes)
        self.weights = torch.from_numpy(fitted.weights_).float()
        self.means = torch.from_numpy(fitted.means_).float()
        self.scale_tril = torch.linalg.cholesky(torch.from_numpy(fitted.covariances_)).float()

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        noise = torch.randn(n, self.means.shape[1], 1, generator=gen)
        return self.means[component] + (self.scale_tril[component] @ noise).squeeze(-1)


def draw_codes(sampler: str, model: VAE, n: int, gen: torch.Generator, mixture: CodeMixture | None) -> torch.Tensor:
    """n latent codes [n, latent_dim] on the CPU from `sampler` (`mixture` is the fitted one, for `gmm`)."""
    return model.prior.sample(n, gen) if sampler == "prior" else mixture.sample(n, gen)


def sampler_title(sampler: str, model: VAE, gmm_components: int) -> str:
    """What a sampler draws from, in words, for figure titles."""
    if sampler == "gmm":
        return f"{gmm_components}-component Gaussian mixture fitted to the training codes"
    return model.prior.title

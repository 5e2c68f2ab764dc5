"""Analyses of the latent space: posterior means, 2-D maps, interpolations, the decoded manifold."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from vaepipe.model import VAE

ENCODE_BATCH = 4096


@torch.no_grad()
def encode_means(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Posterior means mu(x) for every image, on the CPU.

    The stages that use codes as a representation (generate, downstream) pass the grey images, even when
    training binarises dynamically: a binarisation is sampling noise drawn for the Bernoulli likelihood,
    not part of the digit, and the codes of the grey images carry more of the digit. Measured with the
    default model on the validation split: 5-NN 0.9777 and logistic regression 0.8822 with grey codes,
    0.9714 and 0.8698 with the codes of one fixed binarisation (better with every label budget too).
    Where a likelihood is computed (evaluate), q(z|x) is of the binary image being scored.
    """
    model.eval()
    return torch.cat([model.encode(x[i:i + ENCODE_BATCH])[0].cpu() for i in range(0, len(x), ENCODE_BATCH)])


@torch.no_grad()
def decode_probs(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities (Bernoulli means) for latent codes `z`."""
    model.eval()
    return torch.sigmoid(model.decode(z))


def embed_2d(codes: np.ndarray, method: str, seed: int) -> np.ndarray:
    """The codes themselves when 2-D, else PCA or t-SNE down to two dimensions."""
    if codes.shape[1] == 2:
        return codes
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(codes)
    return TSNE(n_components=2, random_state=seed, init="pca").fit_transform(codes)


def interpolate(z_start: torch.Tensor, z_end: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` codes on the straight line from each row of `z_start` to the same row of `z_end`: [rows*steps, D]."""
    t = torch.linspace(0, 1, steps, device=z_start.device).view(1, steps, 1)
    return (z_start.unsqueeze(1) * (1 - t) + z_end.unsqueeze(1) * t).reshape(-1, z_start.shape[1])


def manifold_grid(size: int) -> torch.Tensor:
    """A size x size grid of 2-D codes at evenly spaced quantiles of the N(0, 1) prior (Kingma & Welling)."""
    quantiles = torch.linspace(0.5 / size, 1 - 0.5 / size, size)
    values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
    row, col = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([col, row], dim=-1).reshape(-1, 2)

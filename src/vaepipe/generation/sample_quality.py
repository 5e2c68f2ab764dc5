"""How good generated images are, as the judge (vaepipe.generation.judge) sees them.

- `frechet`: the Fréchet distance between Gaussians fitted to the judge's penultimate features of the
  samples and of the test images (FID, Heusel et al. 2017, with a dataset classifier in place of Inception):
  ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2). Lower is better; it grows with both unrealistic and
  missing kinds of images. Like FID it depends on the number of images (it is biased upwards for few), so
  only numbers computed on the same counts compare.
- `confident`: the share of samples whose most likely class has probability >= `confidence`.
- `class_entropy_bits`: the entropy of the histogram of predicted classes; log2(10) = 3.32 when every
  class is generated equally often.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from vaepipe.core.paths import CLASSES


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [n, d] and b [m, d], in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr (S_a S_b)^1/2 = tr (S_a^1/2 S_b S_a^1/2)^1/2, a symmetric PSD matrix: its eigenvalues are real, so
    # no complex square root (scipy's sqrtm) and no failure when few samples make the covariances singular.
    values, vectors = linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    cross = linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)
    distance = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum()
    return max(float(distance), 0.0)  # >= 0 exactly; rounding can leave -1e-12 for identical sets


def class_entropy_bits(predicted: torch.Tensor) -> float:
    shares = torch.bincount(predicted, minlength=CLASSES).double() / len(predicted)
    shares = shares[shares > 0]
    return float((shares * (1 / shares).log2()).sum())


def class_scores(probs: torch.Tensor, confidence: float) -> dict:
    """The confident share and the class entropy of images the judge gave `probs` [N, 10] (`ConvNet.predict`)."""
    top = probs.max(dim=1)
    return {"confident": top.values.ge(confidence).double().mean().item(),
            "class_entropy_bits": class_entropy_bits(top.indices)}


def judged(probs: torch.Tensor, features: torch.Tensor, reference_features: torch.Tensor, confidence: float) -> dict:
    """The three scores of images the judge gave `probs` and `features` (`ConvNet.predict`), against the features
    of the reference (test) images."""
    return {"frechet": frechet_distance(features.numpy(), reference_features.numpy()), **class_scores(probs, confidence)}


def caption(scores: dict) -> str:
    """A figure's line for images `judged` gave `scores`."""
    return f"Fréchet distance {scores['frechet']:.2f}, {scores['confident']:.0%} confident"

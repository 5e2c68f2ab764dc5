"""Is this image normal? Per-image anomaly scores from a trained VAE, and how well they separate.

Higher means more anomalous for every score. Each score depends on the image alone, not on which other
images are scored with it: the binarisation compares pixels with one fixed field of uniforms and the
importance sampling uses one fixed set of noise draws. A threshold set on held-out normal images therefore
applies unchanged to anyone's images.

- `nll`: -log p(x), importance-sampled (Burda et al. 2015), of the binarised image. The plain likelihood,
  and the one that fails: models of Fashion-MNIST give MNIST digits a higher likelihood than their own
  test images (Nalisnick et al. 2019), because a simple image (mostly black) is likely under any model.
- `recon_error`: squared error between the grey image and the decoded posterior mean, summed over pixels.
- `complexity`: input complexity (Serrà et al. 2020, "Input complexity and out-of-distribution detection
  with likelihood-based generative models"): -log2 p(x) - L(x), where L(x) is the code length a generic
  lossless compressor needs for x. A model that has learnt nothing beyond "images are simple" gains no
  bits over the compressor; what the model knows about its own data does. L is the ideal code length of an
  adaptive context-model coder for binary images (the JBIG family; see `context_code_length`), chosen over
  zlib/PNG because it codes the same binary image the likelihood scores, and codes it far more tightly.
- `typicality`: DoSE (Morningstar et al. 2021, "Density of states estimation for out-of-distribution
  detection"): how unusual the image's summary statistics (nll, KL, recon_error, code length) are, as
  -log density under a Gaussian mixture fitted to the statistics of training images. It flags an image
  whose statistics are atypical in any direction, a likelihood too high included, and combines what the
  single scores see: noise shows in the reconstruction, a rotation in the likelihood.
- `combined`: Fisher's method over `typicality` and `complexity`: the sum of -log p, where p is the share of
  the normal images the density was fitted on that score at least as high. Each catches what the other
  misses: a shrunken digit (MNIST-C's `scale`) has typical statistics but a likelihood too high for its
  code length. The pair was chosen on validation corruptions, over sums with `recon_error` and `nll` too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.mixture import GaussianMixture

from vaepipe.core.artifacts import load_described_tensors, save_tensors
from vaepipe.core.errors import ArtifactError
from vaepipe.core.paths import IMAGE_SIDE, TYPICALITY_COMPONENTS
from vaepipe.core.runtime import autocast, compute_dtype
from vaepipe.data.datasets import binarize_each_image
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.evaluation import likelihood_bounds
from vaepipe.vae.model import VAE

SCORES = ("nll", "recon_error", "complexity", "typicality", "combined")
# The scores `combined` joins.
COMBINED = ("typicality", "complexity")
# The per-image statistics the typicality score models, in this order.
STATISTICS = ("nll", "kl", "recon_error", "code_length")
# Seeds the importance-sampling noise, whatever params say: a score must mean
# the same for every run and every user.
FIXED_SEED = 0
# The already-coded neighbours each pixel's probability is conditioned on, as (row, column) offsets:
# left, upper left, up, upper right (raster order codes these before the pixel).
CONTEXT = ((0, -1), (-1, -1), (-1, 0), (-1, 1))
# Share of anomalies a detector must catch for the FPR-at-95%-TPR metric.
TPR_FOR_FPR = 0.95


def recon_error_score(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between the grey image and its reconstruction from the posterior mean."""
    reconstruction = decode_probs(model, posterior_means(model, x).to(x.device))
    return (reconstruction - x).pow(2).sum(-1)


def context_code_length(x_bin: torch.Tensor) -> torch.Tensor:
    """Bits to code each binary image with an adaptive context model: pixels in raster order, each with the
    Krichevsky-Trofimov probability (ones + 1/2) / (seen + 1) of the pixels coded so far in the same context
    (the 4 neighbours in CONTEXT, outside the image counted as 0), counts starting empty for every image.
    Arithmetic coding reaches this length within 2 bits. It needs no training data: a universal code.

    The KT probability of a context's sequence depends only on its counts a (ones) and b (zeros):
    Gamma(a + 1/2) Gamma(b + 1/2) / (pi Gamma(a + b + 1)), so no pixel-by-pixel loop is needed.
    """
    n = len(x_bin)
    images = x_bin.reshape(n, IMAGE_SIDE, IMAGE_SIDE).to(torch.uint8)
    padded = F.pad(images, (1, 1, 1, 0))  # a column of zeros on each side, a row above
    contexts = torch.zeros_like(images)
    for bit, (dr, dc) in enumerate(CONTEXT):
        contexts |= padded[:, 1 + dr:1 + dr + IMAGE_SIDE, 1 + dc:1 + dc + IMAGE_SIDE] << bit
    n_contexts = 1 << len(CONTEXT)
    # Counts per (image, context) by one bincount over image * n_contexts + context (2x a scatter_add here).
    index = (contexts.reshape(n, -1).long() + torch.arange(0, n * n_contexts, n_contexts,
                                                           device=x_bin.device).unsqueeze(1)).reshape(-1)
    seen, ones = (torch.bincount(i, minlength=n * n_contexts).view(n, n_contexts).double()
                  for i in (index, index[images.reshape(-1).bool()]))
    zeros = seen - ones
    log_kt = (torch.lgamma(ones + 0.5) + torch.lgamma(zeros + 0.5) - math.log(math.pi) - torch.lgamma(seen + 1))
    return (-log_kt.sum(-1) / math.log(2)).to(x_bin.dtype)


def image_statistics(model: VAE, x: torch.Tensor, k: int, precision: str = "fp32") -> dict[str, np.ndarray]:
    """The STATISTICS of grey images [N, 784] in [0, 1] (on the model's device): -log p(x) (nats, importance-
    sampled with the same k noise draws for every image), KL(q(z|x) || p(z)), recon_error, code length (bits).
    `precision` (as evaluate.precision) is that of the importance sampling's network passes; sums stay float32."""
    x_bin = binarize_each_image(x)
    noise = torch.randn(k, model.config.latent_dim, generator=torch.Generator().manual_seed(FIXED_SEED))
    with autocast(compute_dtype(precision, x.device), x.device):
        bounds = likelihood_bounds(model, x_bin, k, None, shared_noise=noise)
    stats = {"nll": bounds.nll, "kl": bounds.kl, "recon_error": recon_error_score(model, x),
             "code_length": context_code_length(x_bin)}
    return {name: stats[name].cpu().numpy().astype(np.float64) for name in STATISTICS}


def _as_matrix(stats: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([stats[name] for name in STATISTICS], axis=1)


@dataclass
class Typicality:
    """The fitted density of the typicality score: standardisation, then a Gaussian mixture."""

    centre: np.ndarray
    scale: np.ndarray
    mixture: GaussianMixture

    @classmethod
    def fit(cls, stats: dict[str, np.ndarray], seed: int) -> "Typicality":
        matrix = _as_matrix(stats)
        centre, spread = matrix.mean(0), matrix.std(0)
        scale = np.where(spread > 0, spread, 1.0)  # a statistic constant over the fit images stays as it is
        mixture = GaussianMixture(TYPICALITY_COMPONENTS, covariance_type="full", random_state=seed)
        return cls(centre, scale, mixture.fit((matrix - centre) / scale))

    def score(self, stats: dict[str, np.ndarray]) -> np.ndarray:
        return -self.mixture.score_samples((_as_matrix(stats) - self.centre) / self.scale)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        m = self.mixture
        return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in (
            ("centre", self.centre), ("scale", self.scale), ("weights", m.weights_), ("means", m.means_),
            ("covariances", m.covariances_))}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "Typicality":
        values = {name: t.numpy().astype(np.float64) for name, t in tensors.items()}
        mixture = GaussianMixture(len(values["weights"]), covariance_type="full")
        mixture.weights_, mixture.means_, mixture.covariances_ = values["weights"], values["means"], values["covariances"]
        # What sklearn evaluates densities with: the Cholesky factor of each precision matrix.
        mixture.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(values["covariances"]))
        return cls(values["centre"], values["scale"], mixture)


def tail_surprise(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """-log p per value, where p = (1 + the number of `reference` scores >= it) / (1 + their count): the
    conservative p-value of a value under the sorted normal scores `reference`."""
    at_least = len(reference) - np.searchsorted(reference, values, side="left")
    return -np.log((at_least + 1) / (len(reference) + 1))


@dataclass
class NormalProfile:
    """What the scores know of normal images: the typicality density, and the sorted `combined` member scores
    (COMBINED) of the normal images it was fitted on, against which `combined` measures how far out a score is."""

    typicality: Typicality
    reference: dict[str, np.ndarray]

    @classmethod
    def fit(cls, stats: dict[str, np.ndarray], seed: int) -> "NormalProfile":
        typicality = Typicality.fit(stats, seed)
        single = _single_scores(stats, typicality)
        return cls(typicality, {name: np.sort(single[name]) for name in COMBINED})

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {**self.typicality.to_tensors(),
                **{f"reference_{name}": torch.from_numpy(self.reference[name]) for name in COMBINED}}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "NormalProfile":
        tensors = dict(tensors)
        reference = {name: tensors.pop(f"reference_{name}").numpy().astype(np.float64) for name in COMBINED}
        return cls(Typicality.from_tensors(tensors), reference)


def _single_scores(stats: dict[str, np.ndarray], typicality: Typicality) -> dict[str, np.ndarray]:
    return {"nll": stats["nll"], "recon_error": stats["recon_error"],
            "complexity": stats["nll"] / math.log(2) - stats["code_length"], "typicality": typicality.score(stats)}


def scores_from(stats: dict[str, np.ndarray], profile: NormalProfile) -> dict[str, np.ndarray]:
    """Every score of SCORES from the images' statistics."""
    single = _single_scores(stats, profile.typicality)
    return {**single, "combined": sum(tail_surprise(profile.reference[name], single[name]) for name in COMBINED)}


def _labelled(normal: np.ndarray, anomalous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[np.zeros(len(normal)), np.ones(len(anomalous))], np.r_[normal, anomalous]


def detection_metrics(normal: np.ndarray, anomalous: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC (anomalies as the positive class) and the false-positive rate at 95 % true positives."""
    labels, scores = _labelled(normal, anomalous)
    fpr, tpr, _ = roc_curve(labels, scores)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "auprc": float(average_precision_score(labels, scores)),
        "fpr_at_95_tpr": float(fpr[np.argmax(tpr >= TPR_FOR_FPR)]),
    }


def threshold_at(normal: np.ndarray, false_positive_rate: float) -> float:
    """The score above which at most `false_positive_rate` of these normal images lie."""
    return float(np.quantile(normal, 1 - false_positive_rate, method="higher"))


def task_metrics(normal: dict[str, dict[str, np.ndarray]], anomalous: dict[str, dict[str, np.ndarray]]
                 ) -> dict[str, dict[str, float]]:
    """Per score: detection metrics on the test split, and the AUROC on the validation split (`val_auroc`),
    which is what chooses between scores. `normal` and `anomalous` map split -> score -> per-image scores."""
    return {score: {**detection_metrics(normal["test"][score], anomalous["test"][score]),
                    "val_auroc": detection_metrics(normal["val"][score], anomalous["val"][score])["auroc"]}
            for score in SCORES}


def mean_over_tasks(per_task: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each score's metrics averaged over tasks (e.g. over corruption types)."""
    tasks = list(per_task.values())
    return {score: {metric: float(np.mean([task[score][metric] for task in tasks])) for metric in tasks[0][score]}
            for score in SCORES}


def best_score(metrics: dict[str, dict[str, float]]) -> dict[str, float | str]:
    """The score with the highest validation AUROC, with its test metrics."""
    name = max(SCORES, key=lambda score: metrics[score]["val_auroc"])
    return {"score": name, **metrics[name]}


def evaluate_detection(scores: dict[str, dict[str, dict[str, np.ndarray]]], corruptions: list[str],
                       false_positive_rate: float) -> tuple[dict, dict[str, float]]:
    """Metrics of every score on both tasks, and each score's threshold.

    `scores` maps split ("val", "test") -> image set ("normal", "ood", each corruption) -> score -> values.
    Returns the metrics (per task and score; each task's best score; the detector) and the thresholds: per
    score, the value that `false_positive_rate` of the normal validation images exceed. The detector's score
    is the best on validation over both tasks (OOD, and corruptions on average).
    """
    normal = {split: sets["normal"] for split, sets in scores.items()}

    def task(name: str) -> dict:
        return task_metrics(normal, {split: sets[name] for split, sets in scores.items()})
    ood = task("ood")
    corruption = {name: task(name) for name in corruptions}
    corruption["mean"] = mean_over_tasks(corruption)
    ood["best"], corruption["best"] = best_score(ood), best_score(corruption["mean"])
    chosen = max(SCORES, key=lambda s: ood[s]["val_auroc"] + corruption["mean"][s]["val_auroc"])
    thresholds = {s: threshold_at(normal["val"][s], false_positive_rate) for s in SCORES}
    flagged = {name: float(np.mean(values[chosen] > thresholds[chosen])) for name, values in scores["test"].items()}
    detector = {"score": chosen, "threshold": thresholds[chosen], "false_positive_rate": false_positive_rate,
                "test_flagged_normal": flagged["normal"], "test_flagged_ood": flagged["ood"],
                "test_flagged_corrupted": float(np.mean([flagged[name] for name in corruptions]))}
    return {"ood": ood, "corruption": corruption, "detector": detector}, thresholds


def roc_table(normal: np.ndarray, anomalous: np.ndarray, n_points: int = 101) -> pd.DataFrame:
    """The ROC curve read at `n_points` evenly spaced false-positive rates (small enough for a chart)."""
    fpr, tpr, _ = roc_curve(*_labelled(normal, anomalous))
    grid = np.linspace(0, 1, n_points)
    return pd.DataFrame({"fpr": grid, "tpr": np.interp(grid, fpr, tpr)})



@dataclass
class Detector:
    """What the anomaly stage saves for scoring new images: the normal images' profile, each score's threshold,
    the score to use, and the model it was made with (a detector is only valid for that model). New images
    are scored with its `k` and `precision` (fp32 | bf16), as the images its thresholds were set on."""

    profile: NormalProfile
    thresholds: dict[str, float]
    score: str
    false_positive_rate: float
    k: int
    precision: str
    model_sha256: str

    def save(self, path: str | Path) -> None:
        settings = {"thresholds": self.thresholds, "score": self.score, "k": self.k, "precision": self.precision,
                    "false_positive_rate": self.false_positive_rate, "model_sha256": self.model_sha256}
        save_tensors(path, self.profile.to_tensors(), {"settings": json.dumps(settings, sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        tensors, settings = load_described_tensors(path, "settings", "detector", "anomaly")
        try:
            if settings.get("precision") not in ("fp32", "bf16"):
                raise ValueError(f"precision {settings.get('precision')!r} is neither fp32 nor bf16")
            return cls(profile=NormalProfile.from_tensors(tensors), **settings)
        except (KeyError, TypeError, ValueError, np.linalg.LinAlgError) as exc:
            raise ArtifactError(f"{path}: not a readable vaepipe detector file ({type(exc).__name__}: {exc}); "
                                "run `dvc repro anomaly`") from None

"""Lossy compression with the VAE as a transform codec: the encoder is the analysis transform, the prior the
entropy model, the decoder the synthesis transform (Ballé, Laparra & Simoncelli 2017 train such codecs end to
end; a VAE with a Gaussian prior is one already).

An image's code is its posterior mean, quantised with a step Δ: q = round(mu / Δ), an integer a latent. The mean,
not a sample of q(z|x): a sample adds noise the rate pays for and the reconstruction does not want (bits-back
coding gets those bits back, a lossy codec cannot). The integers are entropy-coded with `constriction`'s ANS coder
under the prior discretised to the same bins: P(q) is the N(0, 1) mass of [(q - 1/2) Δ, (q + 1/2) Δ], for all the
batch's latents at once. Decoding gives back the integers exactly, and the image is the decoder's mean, the pixel
probabilities sigmoid(decode(q Δ)), in grey.

Δ is the rate knob at compression time: a larger step, fewer bits and coarser codes. The model's KL weight
(`train.beta`) is the one at training time: a larger β, posteriors closer to the prior and fewer bits at any step.

Files are vaepipe.codecs.container's (magic, JSON header, 32-bit words, sha256), with `mode: lossy`:
the header names the model's sha256, the step, the image count and shape, and the sha256 of the codes, so a
damaged file, one made with another model, or one whose codes do not decode, is refused with one line.
"""

from __future__ import annotations

import hashlib
import math

import constriction
import numpy as np
import torch

from vaepipe.codecs.container import AnsCoder, LOSSY, check_common_header, check_model, file_mode, pack, unpack
from vaepipe.core.errors import DataError, InputError
from vaepipe.core.params import ENTROPY_MODELS, MAX_STEP, MIN_STEP
from vaepipe.core.paths import IMAGE_SIDE
from vaepipe.vae.codes import posterior_means
from vaepipe.vae.model import VAE
from vaepipe.vae.priors import NormalPrior

MODE = LOSSY
# Codes are clipped to |z| <= MAX_LATENT: the prior puts 1e-15 of its mass beyond, and a larger alphabet than needed
# only costs the coder time.
MAX_LATENT = 8.0
QuantizedGaussian = constriction.stream.model.QuantizedGaussian
BATCH = 1000  # images a network call, for both ends
MAX_IMAGES = 1_000_000  # a file's images: what a decoder allocates is bounded by this, not by the file's size
MIN_FITTED_STD = 1e-4  # a latent the encoder ignores has means of ~0 spread: its codes cost ~0 bits, not infinitely few


def check_step(step: float) -> float:
    if not (isinstance(step, (int, float)) and math.isfinite(step) and MIN_STEP <= step <= MAX_STEP):
        raise InputError(f"the quantisation step must be a number in [{MIN_STEP:g}, {MAX_STEP:g}], got {step!r}")
    return float(step)


def check_model_supported(model: VAE) -> None:
    """The codec codes images alone: a model that also takes a class label cannot use it."""
    if model.config.classes:
        raise InputError(f"lossy compression needs a model without a class input; this one takes {model.config.classes} classes")


class LatentQuantizer:
    """Values quantised with `step` and clipped to [-max_abs, max_abs], entropy-coded under a Gaussian per latent
    over the same bins: N(0, 1), the prior, unless `means` and `stds` [latent_dim] say otherwise (fitted to the
    posterior means; the PCA baseline's N(0, variance) of each coefficient)."""

    def __init__(self, step: float, means: torch.Tensor | None = None, stds: torch.Tensor | None = None,
                 max_abs: float = MAX_LATENT):
        self.step = check_step(step)
        self.means = torch.zeros(1, dtype=torch.float64) if means is None else means.double()
        self.stds = torch.ones(1, dtype=torch.float64) if stds is None else stds.double()
        self.bound = math.ceil(max_abs / self.step)  # codes lie in [-bound, bound]
        self.entropy_model = QuantizedGaussian(-self.bound, self.bound)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        return torch.round(z / self.step).clamp(-self.bound, self.bound).to(torch.int32)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.to(torch.float32) * self.step

    def _parameters(self, codes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Each code's Gaussian in units of the step, flat, as the coder takes them."""
        shape = codes.shape
        means = (self.means / self.step).expand(shape).reshape(-1).numpy()
        stds = (self.stds / self.step).expand(shape).reshape(-1).numpy()
        return np.ascontiguousarray(means), np.ascontiguousarray(stds)

    def encode(self, codes: torch.Tensor) -> np.ndarray:
        coder = AnsCoder()
        coder.encode_reverse(codes.reshape(-1).numpy().astype(np.int32), self.entropy_model, *self._parameters(codes))
        return coder.get_compressed()

    def decode(self, words: np.ndarray, n_images: int, latent_dim: int) -> torch.Tensor:
        shape = torch.Size([n_images, latent_dim])
        try:
            coder = AnsCoder(words)
            codes = coder.decode(self.entropy_model, *self._parameters(torch.empty(shape)))
        except (ValueError, AssertionError) as exc:
            raise DataError(f"the compressed data is not valid ANS data ({exc})") from None
        if not coder.is_empty():
            raise DataError("the compressed data holds more than the header's images")
        return torch.from_numpy(codes.astype(np.int32)).view(shape)


@torch.no_grad()
def reconstruct(model: VAE, quantizer: LatentQuantizer, codes: torch.Tensor) -> torch.Tensor:
    """The decoder's mean images [N, 784] (pixel probabilities, float32) of integer codes [N, latent_dim]."""
    return torch.cat([torch.sigmoid(model.decode(quantizer.dequantize(batch))) for batch in codes.split(BATCH)])


def codes_sha256(codes: torch.Tensor) -> str:
    return hashlib.sha256(codes.numpy().astype("<i4").tobytes()).hexdigest()


def fitted_gaussians(mu: torch.Tensor) -> dict[str, list[float]]:
    """Each latent's Gaussian fitted to posterior means [N, latent_dim], float32 values as JSON-exact floats."""
    means = mu.double().mean(dim=0)
    stds = mu.double().std(dim=0, correction=0).clamp_min(MIN_FITTED_STD) if len(mu) > 1 else torch.ones_like(means)
    return {"means": means.float().tolist(), "stds": stds.float().tolist()}


def quantizer_of(step: float, entropy_model: dict | None) -> LatentQuantizer:
    if entropy_model is None:
        return LatentQuantizer(step)
    return LatentQuantizer(step, torch.tensor(entropy_model["means"]), torch.tensor(entropy_model["stds"]))


def encode_file(images: torch.Tensor, model: VAE, model_sha256: str, step: float, extra_header: dict,
                entropy_model: str = "auto") -> tuple[bytes, torch.Tensor]:
    """A lossy file of grey images [N, 784] in [0, 1], and their integer codes [N, latent_dim].

    `entropy_model`: "prior" codes every latent under N(0, 1); "fitted" under a Gaussian per latent fitted to these
    images' posterior means, which the header carries (2 numbers a latent); "auto" writes the smaller file."""
    if entropy_model not in ENTROPY_MODELS:
        raise InputError(f"the entropy model must be one of {', '.join(ENTROPY_MODELS)}, got {entropy_model!r}")
    check_model_supported(model)
    if len(images) > MAX_IMAGES:
        raise InputError(f"{len(images):,} images; a lossy file holds at most {MAX_IMAGES:,}")
    mu = posterior_means(model, images.float(), batch=BATCH)
    codes = LatentQuantizer(step).quantize(mu)
    header = {"mode": MODE, "model_sha256": model_sha256, "step": float(step), "n_images": len(images),
              "latent_dim": model.config.latent_dim, "image_shape": [IMAGE_SIDE, IMAGE_SIDE],
              "codes_sha256": codes_sha256(codes), **extra_header}
    normal_prior = isinstance(model.prior, NormalPrior)
    if not normal_prior and entropy_model == "prior":
        raise InputError(f"the entropy model `prior` is N(0, I), and this model's prior is {model.config.prior!r}; "
                         "use fitted (or auto)")
    choices = {"prior": [None], "fitted": [fitted_gaussians(mu)]}
    # A learned prior is no Gaussian per latent: auto then means the fitted Gaussians alone.
    choices["auto"] = choices["prior"] + choices["fitted"] if normal_prior else choices["fitted"]
    files = [pack(quantizer_of(step, gaussians).encode(codes), {**header, "entropy_model": gaussians})
             for gaussians in choices[entropy_model]]
    return min(files, key=len), codes


def _check_header(header: dict, model: VAE, source: str) -> None:
    check_common_header(header, source)
    # A latent the encoder ignores costs next to no bits, so the count cannot be bounded by the file's size.
    if header["n_images"] > MAX_IMAGES:
        raise DataError(f"{source}: the header claims {header['n_images']} images; a lossy file holds at most {MAX_IMAGES:,}")
    step = header.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not MIN_STEP <= step <= MAX_STEP:
        raise DataError(f"{source}: header field `step` is {step!r}; expected a number in [{MIN_STEP:g}, {MAX_STEP:g}]")
    latent_dim = model.config.latent_dim
    if header.get("latent_dim") != latent_dim:
        raise DataError(f"{source}: codes of {header.get('latent_dim')} latents; the model has {latent_dim}")
    if not isinstance(header.get("codes_sha256"), str):
        raise DataError(f"{source}: header field `codes_sha256` is missing")
    gaussians = header.get("entropy_model", False)
    if gaussians is None:
        return
    try:
        means, stds = np.array(gaussians["means"], dtype=float), np.array(gaussians["stds"], dtype=float)
        valid = (means.shape == stds.shape == (latent_dim,) and np.isfinite(means).all()
                 and (np.abs(means) <= MAX_LATENT).all() and (stds >= MIN_FITTED_STD).all() and (stds <= MAX_LATENT).all())
    except (TypeError, KeyError, ValueError):
        valid = False
    if not valid:
        raise DataError(f"{source}: header field `entropy_model` is not a Gaussian a latent")


def decode_file(data: bytes, source: str, model: VAE, model_path: str, model_sha256: str
                ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The header, integer codes [N, latent_dim] and decoded grey images [N, 784] of a lossy file; a one-line
    DataError when the file is damaged, is not lossy, or was made with another model."""
    header, words = unpack(data, source)
    if file_mode(header) != MODE:
        raise DataError(f"{source}: a {file_mode(header)} file, not a lossy one")
    _check_header(header, model, source)
    check_model(header, source, model_path, model_sha256)
    check_model_supported(model)
    quantizer = quantizer_of(header["step"], header["entropy_model"])
    try:
        codes = quantizer.decode(words, header["n_images"], header["latent_dim"])
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    if codes_sha256(codes) != header["codes_sha256"]:
        raise DataError(f"{source}: the decoded codes do not match the file's checksum of them")
    return header, codes, reconstruct(model, quantizer, codes)


def psnr(decoded: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each decoded grey image [N, 784] against the original (peak 1). In numpy's
    single-threaded float64 sums, so the same images give the same bytes in every process."""
    error = decoded.double().numpy() - images.double().numpy()
    mse = np.mean(error * error, axis=1)
    return torch.from_numpy(10 * np.log10(1.0 / np.maximum(mse, 1e-12)))

"""Lossless compression of binary images with the VAE: bits-back coding on an ANS stack (BB-ANS,
Townsend, Bird & Barber 2019), with the `constriction` entropy coders.

For each batch of images the encoder (1) decodes every latent's bin from the stack with the posterior
q(z|x): the "bits back"; (2) encodes the pixels with the decoder's Bernoulli probabilities p(x|z) at
the bins' centres; (3) encodes the bins with the prior, which is uniform because the bins have equal
mass under N(0, 1). The decoder runs the batches in reverse order and undoes each step, in reverse.
A batch then costs -log p(x|z) - log P(z) + log Q(z|x) bits on average: the -ELBO of the discretised
latents. The stack starts from seeded random words, the bits the first batch's posterior decode takes.

Files are vaepipe.codecs.container's, with `mode: lossless`; the header also carries the coder's settings and the
sha256 of the images, so a file whose images do not decode bit for bit is refused.

Encoder and decoder must compute bit-identical probabilities: both run the networks on the same
batches (same shapes, same order within a batch) in float32 on the CPU, and the bin tables in float64.
"""

from __future__ import annotations

import hashlib

import constriction
import numpy as np
import torch

from vaepipe.codecs.container import (AnsCoder, LOSSLESS, WORD_BITS, check_common_header, check_model, file_mode, pack,
                                      unpack)
from vaepipe.core.errors import DataError
from vaepipe.core.params import MAX_LATENT_PRECISION
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE
from vaepipe.vae.model import VAE

MODE = LOSSLESS
INITIAL_WORDS_SEED = 20190501  # any fixed seed: the decoder regenerates the same words to check the end state
MAX_BATCH = 10_000
Bernoulli, Categorical, Uniform = (constriction.stream.model.Bernoulli, constriction.stream.model.Categorical,
                                   constriction.stream.model.Uniform)


class LatentBins:
    """The real line cut into 2**precision bins of equal mass under N(0, 1)."""

    def __init__(self, precision: int):
        self.count = 2 ** precision
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        self._cdf = normal.cdf
        self.edges = normal.icdf(torch.arange(1, self.count, dtype=torch.float64) / self.count)
        self.centres = normal.icdf((torch.arange(self.count, dtype=torch.float64) + 0.5) / self.count).float()

    def posterior_masses(self, mu: torch.Tensor, logvar: torch.Tensor) -> np.ndarray:
        """Mass of each bin under each N(mu, exp(logvar)): [mu.numel(), count], float64."""
        mu, sd = mu.double().reshape(-1, 1), (0.5 * logvar.double()).exp().reshape(-1, 1)
        inner = self._cdf((self.edges.unsqueeze(0) - mu) / sd)
        cdf = torch.cat([torch.zeros_like(inner[:, :1]), inner, torch.ones_like(inner[:, :1])], dim=1)
        return (cdf[:, 1:] - cdf[:, :-1]).numpy()


class BitsBackCoder:
    """BB-ANS for flat binary images [N, 784] (0/1) with `model`, `batch_size` images per network call."""

    def __init__(self, model: VAE, precision: int, batch_size: int):
        self.model = model.eval()
        self.latent_dim = model.config.latent_dim
        self.bins = LatentBins(precision)
        self.batch_size = batch_size
        self.posterior = Categorical(perfect=False)
        self.pixels = Bernoulli(perfect=False)
        self.prior = Uniform(self.bins.count)
        # Enough for the first batch's posterior decode: at most `precision` bits a latent.
        self.initial_words = np.random.default_rng(INITIAL_WORDS_SEED).integers(
            0, 2 ** WORD_BITS, size=batch_size * self.latent_dim * precision // WORD_BITS + 1, dtype=np.uint32)

    @torch.no_grad()
    def _posterior_masses(self, x: torch.Tensor) -> np.ndarray:
        mu, logvar = self.model.encode(x.float())
        return self.bins.posterior_masses(mu, logvar)

    @torch.no_grad()
    def _pixel_probs(self, bins: np.ndarray) -> np.ndarray:
        z = self.bins.centres[torch.as_tensor(bins, dtype=torch.long)].view(-1, self.latent_dim)
        return torch.sigmoid(self.model.decode(z)).double().reshape(-1).numpy()

    def _batches(self, n: int) -> list[slice]:
        return [slice(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    def encode(self, images: torch.Tensor) -> np.ndarray:
        """The compressed words (uint32) of binary images [N, 784]."""
        coder = AnsCoder(self.initial_words.copy(), seal=False)
        for rows in self._batches(len(images)):
            x = images[rows]
            bins = coder.decode(self.posterior, self._posterior_masses(x))
            coder.encode_reverse(x.reshape(-1).numpy().astype(np.int32), self.pixels, self._pixel_probs(bins))
            coder.encode_reverse(bins.astype(np.int32), self.prior)
        return coder.get_compressed()

    def decode(self, words: np.ndarray, n_images: int) -> torch.Tensor:
        """The n_images binary images [N, 784] (uint8) that `encode` compressed into `words`; a DataError
        when the words are not what `encode` wrote with this model and these settings."""
        try:
            coder = AnsCoder(words, seal=False)
        except ValueError as exc:  # e.g. "ANS compressed data never ends in a zero word"
            raise DataError(f"the compressed data is not valid ANS data ({exc})") from None
        images = torch.empty(n_images, IMAGE_PIXELS, dtype=torch.uint8)
        for rows in reversed(self._batches(n_images)):
            n = rows.stop - rows.start
            bins = coder.decode(self.prior, n * self.latent_dim)
            pixels = coder.decode(self.pixels, self._pixel_probs(bins))
            x = torch.as_tensor(pixels, dtype=torch.uint8).view(n, IMAGE_PIXELS)
            coder.encode_reverse(bins, self.posterior, self._posterior_masses(x))
            images[rows] = x
        if not np.array_equal(coder.get_compressed(), self.initial_words):
            raise DataError("the compressed data does not decode with this model and these settings "
                            "(the coder did not end in its initial state)")
        return images

    def initial_bits(self) -> int:
        return len(self.initial_words) * WORD_BITS


def images_sha256(images: torch.Tensor) -> str:
    """sha256 of binary images [N, 784] (0/1), bit-packed: what decoding must give back."""
    return hashlib.sha256(np.packbits(images.numpy().astype(bool)).tobytes()).hexdigest()


def encode_file(images: torch.Tensor, model: VAE, model_sha256: str, precision: int, batch_size: int,
                extra_header: dict) -> bytes:
    """A compressed file of binary images [N, 784] (uint8 0/1): the header says what the decoder needs
    (the model's sha256, the coder's settings, the count and the images' checksum) and `extra_header`."""
    coder = BitsBackCoder(model, precision, batch_size)
    header = {"mode": MODE, "model_sha256": model_sha256, "latent_precision": precision, "batch_size": batch_size,
              "n_images": len(images), "image_shape": [IMAGE_SIDE, IMAGE_SIDE],
              "initial_bits": coder.initial_bits(), "images_sha256": images_sha256(images), **extra_header}
    return pack(coder.encode(images), header)


def _check_header(header: dict, compressed_bits: int, source: str) -> None:
    check_common_header(header, source)
    if header["n_images"] > compressed_bits:  # bits-back codes no image in less than a bit: a crafted count
        raise DataError(f"{source}: the header claims {header['n_images']} images in {compressed_bits} bits")
    limits = {"latent_precision": (1, MAX_LATENT_PRECISION), "batch_size": (1, MAX_BATCH)}
    for field, (low, high) in limits.items():
        value = header.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise DataError(f"{source}: header field `{field}` is {value!r}; expected an integer in [{low}, {high}]")
    if not isinstance(header.get("images_sha256"), str):
        raise DataError(f"{source}: header field `images_sha256` is missing")


def decode_file(data: bytes, source: str, model: VAE, model_path: str, model_sha256: str) -> tuple[dict, torch.Tensor]:
    """The header and binary images [N, 784] (uint8 0/1) of a compressed file; a one-line DataError when
    the file is damaged, was made with another model, or does not decode to the images it was made from."""
    header, words = unpack(data, source)
    if file_mode(header) != MODE:
        raise DataError(f"{source}: a {file_mode(header)} file, not a lossless one")
    _check_header(header, len(words) * WORD_BITS, source)
    check_model(header, source, model_path, model_sha256)
    coder = BitsBackCoder(model, header["latent_precision"], header["batch_size"])
    try:
        images = coder.decode(words, header["n_images"])
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    if images_sha256(images) != header["images_sha256"]:
        raise DataError(f"{source}: the decoded images do not match the file's checksum of them (this machine "
                        "computes other probabilities than the one that compressed it)")
    return header, images



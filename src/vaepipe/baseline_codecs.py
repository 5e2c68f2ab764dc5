"""The classical codecs the VAE's lossy codec is measured against, on the same grey images [N, 784] in [0, 1]:

- JPEG and WebP through Pillow, each image its own file at a quality level; the bytes are the files' as written;
- PNG of the image binarised at 1/2, a 1-bit file per image: the lossless reference for what a digit's shape costs;
- a PCA transform codec, the VAE codec's linear analogue: scikit-learn's PCA fitted on training images, the
  coefficients quantised with a step and entropy-coded with the same quantiser and coder (vaepipe.lossy_compression)
  under N(0, variance) per component, in the same container.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from sklearn.decomposition import PCA

from vaepipe.compression import pack
from vaepipe.data import IMAGE_SIDE
from vaepipe.judge import Judge
from vaepipe.lossy_compression import MAX_LATENT, LatentQuantizer
from vaepipe.params import RateDistortionParams
from vaepipe.rate_distortion import make_point, payload_bytes

PILLOW_FORMATS = ("JPEG", "WEBP")


def _grey_pictures(images: torch.Tensor) -> list[Image.Image]:
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).view(-1, IMAGE_SIDE, IMAGE_SIDE).numpy()
    return [Image.fromarray(picture, mode="L") for picture in pixels]


def _decoded_grey(files: list[bytes]) -> torch.Tensor:
    pictures = [np.asarray(Image.open(io.BytesIO(data)).convert("L")) for data in files]
    return torch.from_numpy(np.stack(pictures)).view(len(files), -1).float() / 255


def pillow_codec(images: torch.Tensor, file_format: str, quality: int) -> tuple[np.ndarray, torch.Tensor]:
    """Each image saved as its own JPEG or WebP file at `quality`: the files' sizes [N] and the decoded images."""
    if file_format not in PILLOW_FORMATS:
        raise ValueError(f"format {file_format!r} is not one of {PILLOW_FORMATS}")
    files = []
    for picture in _grey_pictures(images):
        buffer = io.BytesIO()
        picture.save(buffer, format=file_format, quality=quality)
        files.append(buffer.getvalue())
    return np.array([len(data) for data in files]), _decoded_grey(files)


def binary_png(images: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """Each image binarised at 1/2 and saved as an optimised 1-bit PNG: the sizes [N] and the binary images."""
    files = []
    for picture in _grey_pictures(images):
        buffer = io.BytesIO()
        picture.point(lambda grey: 255 if grey > 127 else 0).convert("1").save(buffer, format="PNG", optimize=True)
        files.append(buffer.getvalue())
    return np.array([len(data) for data in files]), _decoded_grey(files)


class PCACodec:
    """PCA's coefficients quantised with a step, coded under N(0, variance) of each component."""

    def __init__(self, train_images: torch.Tensor, components: int, seed: int):
        self.pca = PCA(n_components=components, svd_solver="randomized", random_state=seed).fit(
            train_images.double().numpy())
        self.basis = torch.from_numpy(self.pca.components_)  # [components, 784]
        self.mean = torch.from_numpy(self.pca.mean_)
        self.stds = torch.from_numpy(np.sqrt(self.pca.explained_variance_))

    def quantizer(self, step: float) -> LatentQuantizer:
        return LatentQuantizer(step, torch.zeros_like(self.stds), self.stds, max_abs=MAX_LATENT * self.stds.max().item())

    def compress(self, images: torch.Tensor, step: float) -> tuple[bytes, torch.Tensor]:
        """One file of all the images (the container of vaepipe.compression) and its decoded images."""
        quantizer = self.quantizer(step)
        codes = quantizer.quantize((images.double() - self.mean) @ self.basis.T)
        header = {"mode": "pca", "step": step, "n_images": len(images), "components": len(self.stds)}
        data = pack(quantizer.encode(codes), header)
        decoded = (quantizer.dequantize(codes).double() @ self.basis + self.mean).clamp(0, 1).float()
        return data, decoded


def baseline_points(train_images: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, judge: Judge,
                    params: RateDistortionParams, seed: int) -> list[dict]:
    points = []
    pca = PCACodec(train_images, params.pca_components, seed)
    for step in params.pca_steps:
        data, decoded = pca.compress(images, step)
        points.append(make_point("pca", step, len(data), payload_bytes(data), decoded, images, labels, judge))
    for file_format, qualities in (("JPEG", params.jpeg_qualities), ("WEBP", params.webp_qualities)):
        for quality in qualities:
            sizes, decoded = pillow_codec(images, file_format, quality)
            total = int(sizes.sum())
            points.append(make_point(file_format.lower(), quality, total, total, decoded, images, labels, judge))
    sizes, decoded = binary_png(images)
    points.append(make_point("png-binary", 0.5, int(sizes.sum()), int(sizes.sum()), decoded, images, labels, judge))
    return points

"""The classical codecs the VAE's codecs are measured against.

Lossless, against bits-back coding (`baseline_sizes`): gzip, bz2 and lzma, PNG and WebP of the same binary images.

Lossy, against the VAE's lossy codec, on the same grey images [N, 784] in [0, 1]:
- JPEG and WebP through Pillow, each image its own file at a quality level; the bytes are the files' as written;
- PNG of the image binarised at 1/2, a 1-bit file per image: the lossless reference for what a digit's shape costs;
- a PCA transform codec, the VAE codec's linear analogue: scikit-learn's PCA fitted on training images, the
  coefficients quantised with a step and entropy-coded with the same quantiser and coder (vaepipe.codecs.lossy)
  under N(0, variance) per component, in the same container.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct

import numpy as np
import torch
from PIL import Image, features
from sklearn.decomposition import PCA

from vaepipe.codecs.container import pack
from vaepipe.codecs.lossy import LatentQuantizer, MAX_LATENT
from vaepipe.core.paths import IMAGE_SIDE

PILLOW_FORMATS = ("JPEG", "WEBP")
SHEET_COLUMNS = 100  # images a row when the baselines get the images as one picture


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
    files = [_saved(picture, format=file_format, quality=quality) for picture in _grey_pictures(images)]
    return np.array([len(data) for data in files]), _decoded_grey(files)


def binary_png(images: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """Each image binarised at 1/2 and saved as an optimised 1-bit PNG: the sizes [N] and the binary images."""
    files = [_saved(picture.point(lambda grey: 255 if grey > 127 else 0).convert("1"), format="PNG", optimize=True)
             for picture in _grey_pictures(images)]
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
        """One file of all the images (vaepipe.codecs.container's format) and its decoded images."""
        quantizer = self.quantizer(step)
        codes = quantizer.quantize((images.double() - self.mean) @ self.basis.T)
        header = {"mode": "pca", "step": step, "n_images": len(images), "components": len(self.stds)}
        data = pack(quantizer.encode(codes), header)
        decoded = (quantizer.dequantize(codes).double() @ self.basis + self.mean).clamp(0, 1).float()
        return data, decoded


def png_idat_bytes(png: bytes) -> int:
    """Bytes of image data in a PNG: the payloads of its IDAT chunks (no signature, header or chunk framing)."""
    total, offset = 0, 8  # after the 8-byte signature
    while offset < len(png):
        (length,) = struct.unpack_from(">I", png, offset)
        if png[offset + 4:offset + 8] == b"IDAT":
            total += length
        offset += 12 + length  # length, type, data, CRC
    return total


def image_sheet(images: np.ndarray, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """Binary images [N, 784] tiled row by row into one boolean picture, `columns` images wide; the last
    row is padded with blank images."""
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    tiles = np.zeros((rows * columns, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    tiles[: len(images)] = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).astype(bool)
    return tiles.reshape(rows, columns, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 1, 3).reshape(
        rows * IMAGE_SIDE, columns * IMAGE_SIDE)


def _saved(picture: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, **options)
    return buffer.getvalue()


def baseline_sizes(images: np.ndarray) -> dict[str, int]:
    """Bytes generic lossless formats take for the same binary images [N, 784] (0/1), each given them all
    at once as our file is: gzip, bz2 and lzma on the bit-packed pixels; a 1-bit PNG (optimised) and a
    lossless WebP of the images tiled into one picture, the PNG as a whole file and as image data only
    (its IDAT payloads). And, for scale, the images as separate PNG files, headers and all."""
    packed = np.packbits(images.astype(bool)).tobytes()
    sheet = Image.fromarray(image_sheet(images))  # mode "1": one bit a pixel
    png = _saved(sheet, format="PNG", optimize=True)
    sizes = {"gzip": len(gzip.compress(packed, compresslevel=9, mtime=0)), "bz2": len(bz2.compress(packed, 9)),
             "lzma": len(lzma.compress(packed, preset=9 | lzma.PRESET_EXTREME)),
             "png_file": len(png), "png_image_data": png_idat_bytes(png),
             "png_per_image_files": sum(len(_saved(Image.fromarray(image), format="PNG", optimize=True))
                                        for image in images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).astype(bool))}
    if features.check("webp"):
        # method 6 (the slowest search) gave the same bytes as 4 on the MNIST test sheet, at 15x the time.
        sizes["webp_file"] = len(_saved(sheet.convert("L"), format="WEBP", lossless=True, quality=100, method=4))
    return sizes

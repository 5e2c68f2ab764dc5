"""Rate-distortion points of the lossy codecs on the same grey test images: bytes an image against PSNR and against
the judge's accuracy on the decoded images (true labels), and the bytes a codec needs for an accuracy.

A point's bytes are the whole file's over the image count (headers included: one file of all the images for the
VAE and PCA codecs, a file per image for JPEG, WebP and PNG), and the payload's: the coded words alone. PSNR is
the mean over images of each image's (peak 1, on [0, 1] grey levels).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaepipe.classifiers.convnet import ConvNet
from vaepipe.codecs.container import unpack
from vaepipe.codecs.lossy import decode_file, encode_file, psnr
from vaepipe.core.errors import DataError
from vaepipe.generation.judge import accuracy
from vaepipe.vae.model import VAE


def mean_psnr(decoded: torch.Tensor, images: torch.Tensor) -> float:
    """The images' mean PSNR in dB, summed exactly (math.fsum): the same images give the same bytes in every run."""
    return math.fsum(psnr(decoded, images).tolist()) / len(images)


def make_point(codec: str, setting: float, file_bytes: int, payload: int, decoded: torch.Tensor,
               images: torch.Tensor, labels: torch.Tensor, judge: ConvNet) -> dict:
    n = len(images)
    return {"codec": codec, "setting": setting, "bytes_per_image": file_bytes / n,
            "payload_bytes_per_image": payload / n, "psnr_db": mean_psnr(decoded, images),
            "accuracy": accuracy(judge, decoded, labels)}


def payload_bytes(data: bytes) -> int:
    """The coded words of a file in the container of vaepipe.codecs.bitsback, in bytes."""
    return 4 * len(unpack(data, "the study's file")[1])


def vae_points(codec: str, model: VAE, model_sha256: str, images: torch.Tensor, labels: torch.Tensor,
               judge: ConvNet, steps: tuple[float, ...], entropy_model: str) -> list[dict]:
    """The VAE codec at each step; each file decoded again, as a user would, and the decoding checked exact."""
    points = []
    for step in steps:
        data, codes = encode_file(images, model, model_sha256, step, {}, entropy_model)
        _, decoded_codes, decoded = decode_file(data, codec, model, codec, model_sha256)
        if not torch.equal(decoded_codes, codes):
            raise DataError(f"{codec} at step {step}: the file did not decode to its codes")
        points.append(make_point(codec, step, len(data), payload_bytes(data), decoded, images, labels, judge))
    return points


def bytes_for_accuracy(points: list[dict], level: float) -> float | None:
    """The fewest bytes an image at which a codec's points reach `level` of accuracy, interpolated linearly
    between the points of its lower envelope (the most accurate point at any size or less); None if none does."""
    ordered = sorted(points, key=lambda point: point["bytes_per_image"])
    envelope: list[tuple[float, float]] = []
    for point in ordered:
        if not envelope or point["accuracy"] > envelope[-1][1]:
            envelope.append((point["bytes_per_image"], point["accuracy"]))
    for index, (high_bytes, high_acc) in enumerate(envelope):
        if high_acc >= level:
            if index == 0:  # the smallest point already reaches it: nothing to interpolate from
                return high_bytes
            low_bytes, low_acc = envelope[index - 1]
            return float(np.interp(level, [low_acc, high_acc], [low_bytes, high_bytes]))
    return None



def cheapest_at_least(points: list[dict], level: float) -> dict | None:
    """The smallest of the points with at least `level` of accuracy."""
    matching = [p for p in points if p["accuracy"] >= level]
    return min(matching, key=lambda p: p["bytes_per_image"]) if matching else None


def summary(vae: list[dict], pca: list[dict], pillow: list[dict], levels: list[float]) -> dict:
    """What the study answers: at each accuracy level, the bytes the VAE codec (its points over every beta) and the
    PCA codec need, and the cheapest JPEG or WebP file at least as accurate, with the ratios; the VAE's best
    accuracy within 6 and within 10 bytes an image; and the ratio to JPEG/WebP at the VAE's most accurate point."""
    by_level = {}
    for level in levels:
        vae_bytes, pca_bytes = bytes_for_accuracy(vae, level), bytes_for_accuracy(pca, level)
        rival = cheapest_at_least(pillow, level)
        by_level[f"{level:.2f}"] = {
            "vae_bytes": vae_bytes, "pca_bytes": pca_bytes,
            "vae_to_pca": vae_bytes / pca_bytes if vae_bytes and pca_bytes else None, "jpeg_webp": rival,
            "vae_to_jpeg_webp": vae_bytes / rival["bytes_per_image"] if vae_bytes and rival else None}
    within = {}
    for budget in (6, 10):
        affordable = [p for p in vae if p["bytes_per_image"] <= budget]
        within[f"best_within_{budget}_bytes"] = max(affordable, key=lambda p: p["accuracy"]) if affordable else None
    most_accurate = max(vae, key=lambda p: p["accuracy"])
    rival = cheapest_at_least(pillow, most_accurate["accuracy"])
    ratios = [entry["vae_to_pca"] for entry in by_level.values()]
    return {"accuracy_levels": by_level,
            "max_vae_to_pca": max(ratios) if all(r is not None for r in ratios) else None,
            **within,
            "most_accurate_vae": {"vae": most_accurate, "jpeg_webp": rival,
                                  "ratio": most_accurate["bytes_per_image"] / rival["bytes_per_image"] if rival else None}}

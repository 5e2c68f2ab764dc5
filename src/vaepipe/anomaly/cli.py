"""`vaepipe-anomaly`: is this image normal? Scores your own images with the trained model and the detector
the anomaly stage saved, and prints each image's score and verdict.

Images are 28 x 28 grey, a light digit on a dark background as in MNIST (colour images are converted to
grey; nothing is resized or inverted). Accepted: PNG (or any image Pillow reads), .npy arrays of shape
[28, 28], [N, 28, 28] or [N, 784] (uint8 0-255, or floats in [0, 1]), and IDX image files like MNIST's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaepipe.anomaly.detector import Detector, SCORES, image_statistics, scores_from
from vaepipe.core import paths
from vaepipe.core.artifacts import file_sha256
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import InputError
from vaepipe.core.params import DEVICES
from vaepipe.core.paths import IMAGE_SIDE
from vaepipe.core.runtime import select_device
from vaepipe.data.image_files import flat_images, read_array
from vaepipe.vae.model import load_model


def _from_array(path: Path, array: np.ndarray) -> torch.Tensor:
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InputError(f"{path}: float pixels must lie in [0, 1] (got {array.min():g} to {array.max():g})")
        values = array.astype(np.float32)
    else:
        raise InputError(f"{path}: pixels of type {array.dtype}; expected uint8 (0-255) or floats in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(flat_images(path, values)))


def read_images(path: Path) -> torch.Tensor:
    """Flat grey images [N, 784] in [0, 1] from one file."""
    stored = read_array(path)
    if stored is not None:
        return _from_array(path, stored[0])
    try:
        with Image.open(path) as image:
            if image.size != (IMAGE_SIDE, IMAGE_SIDE):
                raise InputError(f"{path}: image is {image.size[0]}x{image.size[1]} pixels; expected 28x28")
            return _from_array(path, np.asarray(image.convert("L")))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not an image Pillow can read, nor a .npy or IDX file ({exc})") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vaepipe-anomaly", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, help="PNG, .npy or IDX files")
    parser.add_argument("--model", default=paths.VAE, type=Path, help="the trained VAE (default: %(default)s)")
    parser.add_argument("--detector", default=paths.ANOMALY_DETECTOR, type=Path,
                        help="thresholds and normal-image profile saved by the anomaly stage (default: %(default)s)")
    parser.add_argument("--score", choices=SCORES,
                        help="score to judge by (default: the one the anomaly stage chose on validation data)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    detector = Detector.load(args.detector)
    model = load_model(str(args.model), select_device(args.device))
    if file_sha256(args.model) != detector.model_sha256:
        raise InputError(f"{args.detector} was made for another model than {args.model}; run `dvc repro anomaly`")
    score = args.score or detector.score
    threshold = detector.thresholds[score]
    batches = [(path, read_images(path)) for path in args.images]
    device = next(model.parameters()).device
    values = scores_from(image_statistics(model, torch.cat([x for _, x in batches]).to(device), detector.k,
                                          detector.precision), detector.profile)[score]
    print(f"# score: {score}; anomalous above {threshold:.4g} "
          f"(flags {detector.false_positive_rate:.0%} of held-out normal images)")
    position = 0
    for path, x in batches:
        for i in range(len(x)):
            name = str(path) if len(x) == 1 else f"{path}[{i}]"
            value = values[position]
            print(f"{name}\t{value:.4g}\t{'anomalous' if value > threshold else 'normal'}")
            position += 1


def entry_point() -> None:
    run_stage(main)


if __name__ == "__main__":
    entry_point()

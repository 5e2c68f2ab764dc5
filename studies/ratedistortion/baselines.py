"""The classical codecs on the test set the VAEs are measured on: a PCA transform codec (fitted on the VAEs'
training images, the VAE codec's quantiser and entropy coder), JPEG and WebP at each quality of
studies/ratedistortion/params.yaml, and 1-bit PNG of the binarised digits. Writes results/baselines.json.

    python studies/ratedistortion/baselines.py        # after `dvc repro judge`
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

import torch  # noqa: E402

from vaepipe.classifiers.convnet import ConvNet  # noqa: E402
from vaepipe.codecs.baselines import PCACodec, binary_png, pillow_codec  # noqa: E402
from vaepipe.codecs.rate_distortion import make_point, payload_bytes  # noqa: E402
from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.data.datasets import load_split  # noqa: E402
from vaepipe.generation.judge import load_judge  # noqa: E402
from vaepipe.vae.training import split_train_val  # noqa: E402
from ratedistortion_params import RateDistortionParams  # noqa: E402

DATA_DIR = REPO_ROOT / "data/raw"


def baseline_points(train_images: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, judge: ConvNet,
                    study: RateDistortionParams, seed: int) -> list[dict]:
    points = []
    pca = PCACodec(train_images, study.pca_components, seed)
    for step in study.pca_steps:
        data, decoded = pca.compress(images, step)
        points.append(make_point("pca", step, len(data), payload_bytes(data), decoded, images, labels, judge))
    for file_format, qualities in (("JPEG", study.jpeg_qualities), ("WEBP", study.webp_qualities)):
        for quality in qualities:
            sizes, decoded = pillow_codec(images, file_format, quality)
            total = int(sizes.sum())
            points.append(make_point(file_format.lower(), quality, total, total, decoded, images, labels, judge))
    sizes, decoded = binary_png(images)
    points.append(make_point("png-binary", 0.5, int(sizes.sum()), int(sizes.sum()), decoded, images, labels, judge))
    return points


def main() -> None:
    study = load_params(HERE / "params.yaml", RateDistortionParams)
    params = load_params(REPO_ROOT / "params.yaml")
    train_x, _ = split_train_val(load_split(DATA_DIR, "train")[0], params.train.val_size, params.seed,
                                 params.train.train_subset)
    images, labels = load_split(DATA_DIR, "test")
    judge = load_judge(REPO_ROOT / "models/judge.safetensors", params.dataset, torch.device("cpu"))
    points = baseline_points(train_x.view(len(train_x), -1), images.view(len(images), -1), labels, judge, study,
                             params.seed)
    write_json(HERE / "results/baselines.json", {"points": points})
    for point in points:
        print(f"{point['codec']} {point['setting']:g}: {point['bytes_per_image']:.2f} bytes/image, accuracy "
              f"{point['accuracy']:.4f}, PSNR {point['psnr_db']:.2f} dB")


if __name__ == "__main__":
    run_stage(main)

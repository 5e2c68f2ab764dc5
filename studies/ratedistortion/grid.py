"""The same twelve test digits through every codec at four rates each (`grid` in params.yaml here; the VAE is the
default model, beta 1), each row labelled with its bytes an image over the whole test set (results/).
Writes plots/grid.png.

    python studies/ratedistortion/grid.py        # after the codec@1 and baselines stages
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

import torch  # noqa: E402

from vaepipe.codecs.baselines import PCACodec, pillow_codec  # noqa: E402
from vaepipe.codecs.lossy import BATCH, LatentQuantizer, reconstruct  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.data.datasets import load_split  # noqa: E402
from vaepipe.figures.plots import labelled_rows  # noqa: E402
from vaepipe.vae.codes import posterior_means  # noqa: E402
from vaepipe.vae.model import load_model  # noqa: E402
from vaepipe.vae.training import split_train_val  # noqa: E402
from ratedistortion_params import RateDistortionParams  # noqa: E402

SHOWN = 12


def main() -> None:
    study = load_params(HERE / "params.yaml", RateDistortionParams)
    params = load_params(REPO_ROOT / "params.yaml")
    digits = load_split(REPO_ROOT / "data/raw", "test")[0][:SHOWN].reshape(SHOWN, -1)
    sizes = {(p["codec"], p["setting"]): p["bytes_per_image"]
             for name in ("vae-beta-1", "baselines") for p in json.loads((HERE / f"results/{name}.json").read_text())["points"]}
    model = load_model(HERE / "models/beta-1.safetensors", torch.device("cpu"))
    train_x, _ = split_train_val(load_split(REPO_ROOT / "data/raw", "train")[0], params.train.val_size, params.seed,
                                 params.train.train_subset)
    pca = PCACodec(train_x.view(len(train_x), -1), study.pca_components, params.seed)
    rows = {"original": digits}
    for step in study.grid["vae"]:
        quantizer = LatentQuantizer(step)
        rows[f"VAE, step {step:g}: {sizes[('vae-beta-1', step)]:.1f} bytes"] = reconstruct(
            model, quantizer, quantizer.quantize(posterior_means(model, digits, batch=BATCH)))
    for step in study.grid["pca"]:
        rows[f"PCA, step {step:g}: {sizes[('pca', step)]:.1f} bytes"] = pca.compress(digits, step)[1]
    for codec in ("jpeg", "webp"):
        for quality in study.grid[codec]:
            rows[f"{codec.upper()}, quality {quality:g}: {sizes[(codec, quality)]:.0f} bytes"] = pillow_codec(
                digits, codec.upper(), int(quality))[1]
    labelled_rows(rows, "The same test digits at four rates per codec (bytes an image over the 10,000)",
                  HERE / "plots/grid.png")


if __name__ == "__main__":
    run_stage(main)

"""The test-set NLL estimate against its cost: importance samples k and the proposal's width (evaluate.k,
evaluate.proposal_scale), on the pipeline's trained model (run `dvc repro train` first).

    python bench/nll_estimator.py --out bench/results-cpu-nll-estimator.json
    python bench/nll_estimator.py --images 1000 --ks 100 250 --scales 1 1.3

Every cell is a valid bound on the same model: a lower NLL is a tighter one, so the table shows how many samples
each proposal needs for a given tightness. The images are the first --images of the binarised test set, as the
evaluate stage scores them; each cell draws its noise from the same seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from machine import describe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from vaepipe.core import paths  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.core.runtime import generator  # noqa: E402
from vaepipe.data.datasets import binarize_set, load_split  # noqa: E402
from vaepipe.vae.evaluation import likelihood_bounds  # noqa: E402
from vaepipe.vae.model import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="test images scored (the first ones)")
    parser.add_argument("--ks", type=int, nargs="+", default=[100, 250, 1000])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.15, 1.3, 1.45])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    params = load_params()
    device = torch.device("cpu")
    model = load_model(paths.VAE, device)
    images, _ = load_split(paths.RAW, "test")
    x = binarize_set(images, params.train.binarize)[: args.images]
    # Compiles the likelihood kernel once, so no cell's time includes it.
    likelihood_bounds(model, x[:500], 1000, generator(device, params.seed))
    cells = []
    for k in args.ks:
        for scale in args.scales:
            start = time.perf_counter()
            bounds = likelihood_bounds(model, x, k, generator(device, params.seed), proposal_scale=scale)
            cells.append({"k": k, "proposal_scale": scale, "nll": bounds.nll.mean().item(),
                          "seconds": time.perf_counter() - start})
            print(f"k={k:5d} scale={scale:.2f}: NLL {cells[-1]['nll']:.3f} nats ({cells[-1]['seconds']:.1f} s)")
    summary = {"machine": describe(device), "images": len(x), "latent_dim": params.latent_dim,
               "train_epochs": params.train.epochs, "cells": cells}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

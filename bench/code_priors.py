"""The `learned` sampler's kinds compared on validation (params `code_prior`), on the pipeline's trained model and
judge (run `dvc repro generate` first).

    python bench/code_priors.py --out bench/results-cpu-code-priors.json
    python bench/code_priors.py --kinds mixture:50 mixture:150 diffusion:3000 --round-trips 0 2 --temperatures 1
    cd <a copy of the pipeline run with dataset: fashion-mnist> && python <this checkout>/bench/code_priors.py \
        --kinds mixture:150 --draws 3 --out <this checkout>/bench/results-cpu-code-priors-fashion.json

Each kind is fitted to the codes of the training part, as the generate stage fits it, with params.yaml's
settings (a kind's number sets `components` for a mixture, `steps` otherwise); 10,000 samples of each, decoded, are
scored by the judge against the validation images, which neither the VAE nor the densities saw, once per number of
round trips and temperature. The reconstructions of the validation images are the ceiling. The time is the fit's and the draw's.

Then the test set as the reference, as the generate stage scores: params.yaml's sampler drawn --draws times from one
fit (how much the Fréchet distance of 10,000 samples varies), the reconstructions of the validation images and the
validation images themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from machine import describe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from vaepipe.core import paths  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.core.runtime import generator, make_deterministic  # noqa: E402
from vaepipe.data.datasets import load_split, train_val_indices  # noqa: E402
from vaepipe.generation.judge import load_judge  # noqa: E402
from vaepipe.generation.sample_quality import frechet_distance, judged  # noqa: E402
from vaepipe.latent.samplers import fit_code_prior, round_trip  # noqa: E402
from vaepipe.vae.codes import decode_probs, posterior_means  # noqa: E402
from vaepipe.vae.model import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+",
                        default=["mixture:10", "mixture:50", "mixture:150", "diffusion:1500", "flow:1500"],
                        help="KIND:N, N the components of a mixture, the Adam steps of the others")
    parser.add_argument("--round-trips", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.9])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--draws", type=int, default=6, help="draws of params.yaml's sampler scored on the test set")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    params = load_params()
    make_deterministic(params.seed)
    device = torch.device("cpu")
    model = load_model(paths.VAE, device)
    judge = load_judge(paths.JUDGE, params.dataset, device)
    images, _ = load_split(paths.RAW, "train")
    train_part, val_part = train_val_indices(len(images), params.train.val_size, params.seed)
    codes = posterior_means(model, images[train_part])
    _, val_features = judge.predict(images[val_part])
    confidence = params.generate.confidence

    def scores(z: torch.Tensor) -> dict:
        return judged(*judge.predict(decode_probs(model, z)), val_features, confidence)

    reconstruction_probs, reconstruction_features = judge.predict(decode_probs(model, posterior_means(model, images[val_part])))
    ceiling = judged(reconstruction_probs, reconstruction_features, val_features, confidence)
    print(f"reconstructions of the validation images: {ceiling}")
    cells = []
    for spec in args.kinds:
        kind, number = spec.split(":")
        size = {"components": int(number)} if kind == "mixture" else {"steps": int(number)}
        settings = dataclasses.replace(params.code_prior, kind=kind, **size)
        start = time.perf_counter()
        density = fit_code_prior(codes, settings, params.seed)
        fit_seconds = time.perf_counter() - start
        for temperature in args.temperatures:
            density.temperature = temperature
            start = time.perf_counter()
            drawn = density.sample(args.samples, generator(device, params.seed))
            draw_seconds = time.perf_counter() - start
            for trips in args.round_trips:
                start = time.perf_counter()
                z = round_trip(model, drawn, trips)
                seconds = fit_seconds + draw_seconds + time.perf_counter() - start
                cells.append({"kind": kind, **size, "temperature": temperature, "round_trips": trips,
                              "seconds": seconds, "validation": scores(z)})
                print(json.dumps(cells[-1]), flush=True)
    test_images, _ = load_split(paths.RAW, "test")
    _, test_features = judge.predict(test_images)
    density = fit_code_prior(codes, params.code_prior, params.seed)
    draws = []
    for seed in range(args.draws):
        z = round_trip(model, density.sample(args.samples, generator(device, seed)), params.code_prior.round_trips)
        draws.append(judged(*judge.predict(decode_probs(model, z)), test_features, confidence))
        print(f"draw {seed} against the test set: {draws[-1]}", flush=True)
    test_reference = {"learned_draws": draws,
                      "validation_reconstructions_frechet": frechet_distance(reconstruction_features.numpy(),
                                                                             test_features.numpy()),
                      "validation_images_frechet": frechet_distance(val_features.numpy(), test_features.numpy())}
    summary = {"machine": describe(device), "dataset": params.dataset, "samples": args.samples,
               "code_prior": dataclasses.asdict(params.code_prior),
               "reconstructions": ceiling, "cells": cells, "test_reference": test_reference}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

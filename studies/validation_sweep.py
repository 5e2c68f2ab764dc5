"""Choose a setting on validation data: train one model per value and score each on the held-out split.

    python studies/validation_sweep.py latent_dim=16,20,24,32,48      # after `dvc repro download`
    python studies/validation_sweep.py train.lr=0.001,0.002 --k 200 --out studies/results/lr.json

Every other setting comes from params.yaml. Each candidate is trained exactly as the train stage trains
(same split, seed and code) and scored by the importance-sampled NLL on the validation images the
train stage holds out, binarised the way it binarises them. The test set is never read, so the value
chosen here can be reported on the test set once, honestly. Results go to stdout as a markdown table
and, with --out, as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.params import parse_params, read_yaml, with_overrides  # noqa: E402
from vaepipe.core.runtime import generator, make_deterministic, select_device  # noqa: E402
from vaepipe.data.datasets import binarize_set, load_split  # noqa: E402
from vaepipe.vae.codes import posterior_means  # noqa: E402
from vaepipe.vae.evaluation import active_units, likelihood_bounds  # noqa: E402
from vaepipe.vae.model import VAE, VAEConfig  # noqa: E402
from vaepipe.vae.training import split_train_val, train  # noqa: E402


def score_candidate(raw: dict, data_dir: Path, k: int) -> dict:
    params = parse_params(raw)
    make_deterministic(params.seed)
    device = select_device(params.device)
    images, _ = load_split(data_dir, "train")
    train_x, val_x = split_train_val(images, params.train.val_size, params.seed, params.train.train_subset)
    val_x = binarize_set(val_x, params.train.binarize)
    model = VAE(VAEConfig.from_params(params.latent_dim, params.train)).to(device)
    start = time.perf_counter()
    train(model, train_x.to(device), val_x.to(device), params.train, params.seed, lambda *_: None)
    seconds = time.perf_counter() - start
    bounds = likelihood_bounds(model, val_x.to(device), k, generator(device, params.seed))
    return {"val_nll": bounds.nll.mean().item(), "val_neg_elbo": bounds.neg_elbo.mean().item(),
            "active_units": active_units(posterior_means(model, val_x.to(device))), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="one params key and its candidate values, e.g. latent_dim=16,24,32")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per validation image")
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data/raw")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    key, _, values = args.grid.partition("=")
    raw = read_yaml(args.params)
    rows = []
    for text in values.split(","):
        row = {key: yaml.safe_load(text), **score_candidate(with_overrides(raw, [f"{key}={text}"]), args.data, args.k)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n| {key} | validation NLL (k={args.k}) | validation -ELBO | active units | training s |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row[key]} | {row['val_nll']:.2f} | {row['val_neg_elbo']:.2f} | {row['active_units']} "
              f"| {row['train_seconds']:.0f} |")
    if args.out:
        write_json(args.out, {"grid": key, "k": args.k, "torch": torch.__version__, "results": rows})


if __name__ == "__main__":
    main()

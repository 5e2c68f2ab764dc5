"""Time per training epoch on 1 and on 2 processes (`train.nproc`), with the default params on all of MNIST.

    python bench/processes.py                                  # after `dvc repro download`
    python bench/processes.py --repeats 3 --out bench/results-cpu-processes.json

Each run is the train stage as dvc.yaml starts it, `python -m vaepipe.vae.launch --nproc-per-node N stages/train.py`,
in a temporary folder holding this checkout's stages/ and params.yaml (with train.epochs and train.nproc set) and
a link to its data/raw. Python's, torch's and torchrun's start-up are the same for a short and a long run, so an
epoch's time (training plus validation) is the difference of their median wall times over the difference of
their epochs. The long runs' validation -ELBO is reported too: 2 processes train the model 1 process does, up to
rounding (README, "Training on several processes").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def timed_train(nproc: int, epochs: int) -> tuple[float, float]:
    """Wall time of the train stage on `nproc` processes for `epochs` epochs, and its validation -ELBO."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"].update(epochs=epochs, nproc=nproc)
    with tempfile.TemporaryDirectory() as root:
        work = Path(root)
        shutil.copytree(REPO_ROOT / "stages", work / "stages")
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        (work / "data").mkdir()
        (work / "data/raw").symlink_to(REPO_ROOT / "data/raw")
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))
        command = [sys.executable, "-m", "vaepipe.vae.launch", "--nproc-per-node", str(nproc), "stages/train.py"]
        start = time.perf_counter()
        ran = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if ran.returncode:
            sys.exit(f"error: training on {nproc} process(es) failed: {ran.stderr.strip().splitlines()[-1]}")
        metrics = json.loads((work / "metrics/train/metrics.json").read_text())
    return wall, metrics["val"]["neg_elbo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--epochs", type=int, nargs=2, default=[1, 5], metavar=("SHORT", "LONG"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    short, long = args.epochs
    if not short < long:
        sys.exit(f"error: --epochs needs SHORT < LONG, got {short} {long}")
    if not (REPO_ROOT / "data/raw/train-images-idx3-ubyte").is_file():
        sys.exit("error: no data/raw/train-images-idx3-ubyte: run `dvc repro download` first")
    results = {}
    for nproc in args.nproc:
        walls = {epochs: [] for epochs in (short, long)}
        long_neg_elbos = set()  # one value: each run of a process count is deterministic
        for _ in range(args.repeats):
            for epochs in (short, long):
                wall, neg_elbo = timed_train(nproc, epochs)
                walls[epochs].append(wall)
                if epochs == long:
                    long_neg_elbos.add(neg_elbo)
                print(f"{nproc} process(es), {epochs} epoch(s): {wall:.1f} s, val -ELBO {neg_elbo:.4f}", flush=True)
        per_epoch = (statistics.median(walls[long]) - statistics.median(walls[short])) / (long - short)
        results[str(nproc)] = {"wall_s": {str(e): w for e, w in walls.items()}, "epoch_s": per_epoch,
                               f"val_neg_elbo_after_{long}_epochs": sorted(long_neg_elbos)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    summary = {"commit": commit, "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
               "epochs": args.epochs, "repeats": args.repeats, "processes": results}
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

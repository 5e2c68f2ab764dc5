"""The price of having no C++ compiler: a training epoch of the default params (params.yaml) with torch.compile,
and without it (`CXX` pointing nowhere, an empty inductor cache: everything runs eagerly).

    python bench/no_compiler.py                      # after `dvc repro download` (reads data/raw)
    python bench/no_compiler.py --out bench/results-cpu-no-compiler.json

Each way runs in its own child process and trains --epochs epochs of the default model on the training split; the
first epoch (which compiles) is reported apart, the later ones' median is the steady state. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT / "bench"))


def worker(data: Path, epochs: int) -> dict:
    import torch

    from vaepipe.core.params import load_params
    from vaepipe.core.runtime import cpp_compiler_found, make_deterministic
    from vaepipe.data.datasets import load_split
    from vaepipe.vae.model import VAE, VAEConfig
    from vaepipe.vae.training import Trainer, split_train_val

    params = load_params(REPO_ROOT / "params.yaml")
    make_deterministic(params.seed)
    train_x, _ = split_train_val(load_split(data, "train")[0], params.train.val_size, params.seed)
    trainer = Trainer(VAE(VAEConfig.from_params(params.latent_dim, params.train)), train_x, params.train, params.seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.run_epoch()
        times.append(time.perf_counter() - start)
    return {"compiled": cpp_compiler_found(), "images": len(train_x), "first_epoch_s": times[0],
            "epoch_s": statistics.median(times[1:]), "epochs_s": times, "threads": torch.get_num_threads()}


def measure(data: Path, epochs: int, hide_compiler: bool) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        if hide_compiler:
            env["CXX"] = "/nonexistent/g++"
        done = subprocess.run([sys.executable, __file__, "--worker", "--data", str(data), "--epochs", str(epochs)],
                              env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: the {'eager' if hide_compiler else 'compiled'} run failed: {done.stderr.strip()}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "raw"), help="decompressed MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=4, help="epochs each way (>= 2; the first compiles)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        sys.exit("error: --epochs must be >= 2")
    if args.worker:
        print(json.dumps(worker(Path(args.data), args.epochs)))
        return
    import torch
    from machine import describe

    compiled, eager = (measure(Path(args.data), args.epochs, hide) for hide in (False, True))
    if not compiled["compiled"] or eager["compiled"]:
        sys.exit("error: this machine has no C++ compiler, so there is no compiled run to compare with")
    summary = {"machine": describe(torch.device("cpu")), "compiled": compiled, "eager": eager,
               "eager_slowdown": eager["epoch_s"] / compiled["epoch_s"]}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

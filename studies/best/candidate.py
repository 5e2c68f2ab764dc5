"""Train one candidate configuration exactly as the train stage would, then score it: validation NLL (what the
choice is made on), and -ELBO, NLL and active units on the test set (what is reported).

    python studies/best/candidate.py mog50-60min     # after `dvc repro download`; DVC runs every candidate

The candidate's settings are the project's params.yaml with the candidate's `dvc exp run -S` overrides
(studies/best/params.yaml), so the same overrides given to `dvc exp run` reproduce its model byte for byte.
Resumable like the train stage (checkpoints/best/); the training time, resumed runs included, goes to
timings/<name>.json, apart from the results, which the same settings must reproduce byte for byte.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from vaepipe.core.artifacts import all_or_nothing, save_weights, write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import load_params, parse_params, read_yaml, with_overrides  # noqa: E402
from vaepipe.core.runtime import generator, make_deterministic, select_device  # noqa: E402
from vaepipe.data.datasets import SPLIT_FILES, binarize_set, load_split  # noqa: E402
from vaepipe.vae.checkpoint import Checkpoint, fingerprint  # noqa: E402
from vaepipe.vae.codes import posterior_means  # noqa: E402
from vaepipe.vae.evaluation import active_units, likelihood_bounds  # noqa: E402
from vaepipe.vae.model import VAE, VAEConfig  # noqa: E402
from vaepipe.vae.training import split_train_val, train  # noqa: E402
from best_params import BestStudyParams  # noqa: E402

DATA_DIR = REPO_ROOT / "data/raw"


class TimedCheckpoint(Checkpoint):
    """A checkpoint that also carries the training time so far, so that a resumed run reports all of it."""

    def __init__(self, path: Path, run_fingerprint: str):
        super().__init__(path, run_fingerprint)
        self.seconds_before, self.started = 0.0, time.perf_counter()

    def load(self):
        saved = super().load()
        self.seconds_before, self.started = (saved[1]["train_seconds"] if saved else 0.0), time.perf_counter()
        return saved

    def save(self, tensors, meta) -> None:
        super().save(tensors, {**meta, "train_seconds": self.seconds()})

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


def scores(model: VAE, x, k: int, seed: int, prefix: str) -> dict:
    """-ELBO and importance-sampled NLL (k samples, noise seeded as the evaluate stage seeds it) in nats."""
    bounds = likelihood_bounds(model, x, k, generator(x.device, seed))
    return {f"{prefix}_neg_elbo": bounds.neg_elbo.mean().item(), f"{prefix}_nll": bounds.nll.mean().item()}


def main() -> None:
    study = load_params(HERE / "params.yaml", BestStudyParams)
    if len(sys.argv) != 2 or sys.argv[1] not in study.candidates:
        raise PipelineError(f"usage: candidate.py NAME, one of {', '.join(study.candidates)} "
                            f"(got {' '.join(sys.argv[1:]) or 'nothing'})")
    name = sys.argv[1]
    overrides = study.candidates[name]
    params = parse_params(with_overrides(read_yaml(REPO_ROOT / "params.yaml"), overrides))
    make_deterministic(params.seed)
    device = select_device(params.device)
    images, _ = load_split(DATA_DIR, "train")
    train_x, val_x = split_train_val(images, params.train.val_size, params.seed, params.train.train_subset)
    val_x = binarize_set(val_x, params.train.binarize).to(device)
    config = VAEConfig.from_params(params.latent_dim, params.train)
    model = VAE(config).to(device)
    settings = {"seed": params.seed, "latent_dim": params.latent_dim, "device": str(device),
                "train": dataclasses.asdict(params.train)}
    checkpoint = TimedCheckpoint(REPO_ROOT / f"checkpoints/best/{name}.safetensors",
                                 fingerprint(settings, [Path(__file__), *(DATA_DIR / f for f in SPLIT_FILES["train"])]))
    epochs_run = []
    kept_epoch = train(model, train_x.to(device), val_x, params.train, params.seed,
                       lambda epoch, *_: epochs_run.append(epoch), checkpoint)
    train_seconds = checkpoint.seconds()
    start = time.perf_counter()
    test_images, _ = load_split(DATA_DIR, "test")
    test_x = binarize_set(test_images, params.train.binarize).to(device)
    results = {"overrides": list(overrides), "epochs": epochs_run[-1], "kept_epoch": kept_epoch,
               "parameters": sum(p.numel() for p in model.parameters()),
               "val_k": study.val_k, **scores(model, val_x, study.val_k, params.seed, "val"),
               "test_k": study.test_k, **scores(model, test_x, study.test_k, params.seed, "test"),
               "active_units": active_units(posterior_means(model, test_x))}
    score_seconds = time.perf_counter() - start
    with all_or_nothing():
        save_weights(HERE / f"models/{name}.safetensors", model.state_dict(), config.to_dict())
        write_json(HERE / f"results/{name}.json", results)
        write_json(HERE / f"timings/{name}.json", {"train_seconds": round(train_seconds, 1),
                                                   "score_seconds": round(score_seconds, 1), "device": str(device)})
    checkpoint.remove()
    print(f"{name}: {epochs_run[-1]} epochs in {train_seconds / 60:.1f} min (kept {kept_epoch}); validation NLL "
          f"(k={study.val_k}) {results['val_nll']:.2f}, test NLL (k={study.test_k}) {results['test_nll']:.2f} nats")


if __name__ == "__main__":
    run_stage(main)

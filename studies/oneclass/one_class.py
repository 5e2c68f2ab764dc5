"""One-class novelty (the Deep SVDD protocol, Ruff et al. 2018): a VAE trained on one class's training
images only scores the whole test set; that class is normal, the nine others anomalous. Writes the test AUROC
of every anomaly score, and its validation AUROC, to results/<dataset>/<class>.json.

    python studies/oneclass/one_class.py mnist 3     # after get_data.py mnist; DVC runs every dataset and class

Validation: the class's held-out training images (train.val_size) against a seeded draw of `n_val_anomalies`
training images of the other classes. summarize.py chooses the score on it; the test set only scores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from vaepipe.anomaly.detector import NormalProfile, detection_metrics, image_statistics, scores_from  # noqa: E402
from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.core.runtime import make_deterministic, select_device  # noqa: E402
from vaepipe.data.datasets import DATASETS, binarize_set, load_split  # noqa: E402
from vaepipe.vae.model import VAE, VAEConfig  # noqa: E402
from vaepipe.vae.training import split_train_val, train  # noqa: E402
from oneclass_params import OneClassParams  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 2 or args[0] not in DATASETS or not args[1].isdigit() or not 0 <= int(args[1]) <= 9:
        raise PipelineError(f"usage: one_class.py DATASET CLASS, a dataset of {', '.join(DATASETS)} and a class from "
                            f"0 to 9 (got {' '.join(args) or 'nothing'})")
    dataset, digit = args[0], int(args[1])
    params = load_params(HERE / "params.yaml", OneClassParams)
    make_deterministic(params.seed)
    device = select_device(params.device)
    (train_x, train_y), (test_x, test_y) = (load_split(HERE / "data" / dataset, split) for split in ("train", "test"))
    fit_x, val_x = split_train_val(train_x[train_y == digit], params.train.val_size, params.seed,
                                   params.train.train_subset)
    model = VAE(VAEConfig.from_params(params.latent_dim, params.train)).to(device)
    start = time.perf_counter()
    train(model, fit_x.to(device), binarize_set(val_x, params.train.binarize).to(device), params.train,
          params.seed, lambda *_: None)
    train_seconds = time.perf_counter() - start
    profile = NormalProfile.fit(image_statistics(model, fit_x.to(device), params.k), params.seed)

    def scores(x):
        return scores_from(image_statistics(model, x.to(device), params.k), profile)
    others = torch.nonzero(train_y != digit).flatten()
    val_anomalies = others[torch.randperm(len(others), generator=torch.Generator().manual_seed(params.seed))
                           [: params.n_val_anomalies]]
    val_normal, val_anomalous, test = scores(val_x), scores(train_x[val_anomalies]), scores(test_x)
    normal = (test_y == digit).numpy()
    results = {name: {**detection_metrics(values[normal], values[~normal]),
                      "val_auroc": detection_metrics(val_normal[name], val_anomalous[name])["auroc"]}
               for name, values in test.items()}
    # No timings in the file: the same settings must give the same bytes.
    write_json(HERE / f"results/{dataset}/{digit}.json", {"dataset": dataset, "digit": digit,
                                                           "train_images": len(fit_x), **results})
    print(f"{dataset} class {digit}: trained in {train_seconds:.1f} s; "
          + ", ".join(f"{name} AUROC {r['auroc']:.4f}" for name, r in results.items()))


if __name__ == "__main__":
    run_stage(main)

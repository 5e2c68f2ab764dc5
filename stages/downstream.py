"""Stage `downstream`: classifiers on the posterior means mu(x); accuracy with all labels and with few.

Each probe is fitted on the training part of the training split and chosen by its accuracy on the
validation part (the split the train stage holds out); the test set only scores what was chosen. With few
labels, the `cluster` probe names the cluster stage's clusters (found in all codes without labels).
"""

import pandas as pd

from vaepipe.artifacts import all_or_nothing, atomic_path, write_json
from vaepipe.cli import run_stage
from vaepipe.clustering import load_clusters
from vaepipe.data import load_split, train_val_indices
from vaepipe.downstream import chosen_on_validation, fit_and_score, label_efficiency
from vaepipe.latent import encode_means
from vaepipe.model import load_model
from vaepipe.params import load_params
from vaepipe.runtime import make_deterministic, select_device

DATA_DIR = "data/raw"
MODEL_PATH = "models/vae.safetensors"
CLUSTERS_PATH = "data/clusters.safetensors"
METRICS_PATH = "metrics/downstream.json"
PREDICTIONS_PATH = "plots/downstream/confusion.csv"


def main() -> None:
    params = load_params()
    dp = params.downstream
    make_deterministic(params.seed)
    model = load_model(MODEL_PATH, select_device(params.device))
    device = next(model.parameters()).device
    (train_x, train_y), (test_x, test_y) = (load_split(DATA_DIR, split) for split in ("train", "test"))
    # Codes of the grey images: see vaepipe.latent.encode_means.
    train_codes, test_codes = (encode_means(model, x.to(device)).numpy() for x in (train_x, test_x))
    train_y, test_y = train_y.numpy(), test_y.numpy()
    clusters = load_clusters(CLUSTERS_PATH, len(train_y), len(test_y))
    fit, val = (idx.numpy() for idx in train_val_indices(len(train_y), params.train.val_size, params.seed))
    eval_sets = {"val": (train_codes[val], train_y[val]), "test": (test_codes, test_y)}
    fit_codes, fit_y = train_codes[fit], train_y[fit]

    full = fit_and_score(fit_codes, fit_y, eval_sets, dp.knn_neighbors, params.seed)
    best, metrics = chosen_on_validation({name: {s: acc for s, (acc, _) in per_set.items()}
                                          for name, per_set in full.items()})
    for budget in dp.label_budgets:
        few = label_efficiency(fit_codes, fit_y, eval_sets, budget, dp.label_draws, dp.knn_neighbors, dp.unlabelled,
                               params.seed, train_clusters=clusters["train"][fit],
                               eval_clusters={"val": clusters["train"][val], "test": clusters["test"]})
        metrics.update(chosen_on_validation(few, f"_{budget}_labels")[1])
    with all_or_nothing():
        write_json(METRICS_PATH, metrics)
        with atomic_path(PREDICTIONS_PATH) as tmp:
            pd.DataFrame({"actual": test_y, "predicted": full[best]["test"][1]}).to_csv(tmp, index=False)
    print(f"test accuracy of the probe chosen on validation ({best}): {metrics['accuracy']:.4f}; "
          + ", ".join(f"{b} labels ({metrics[f'probe_{b}_labels']}): {metrics[f'accuracy_{b}_labels']:.4f}"
                      for b in dp.label_budgets))


if __name__ == "__main__":
    run_stage(main)

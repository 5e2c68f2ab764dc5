"""Stage `downstream`: classifiers on the posterior means mu(x); accuracy with all labels and with few.

    dvc repro downstream
    dvc exp run -S downstream.label_budgets=[10,100,1000] -S downstream.label_draws=10

Each probe is fitted on the training part of the training split and chosen by its accuracy on the
validation part (the split the train stage holds out); the test set only scores what was chosen. With few
labels, the `cluster` probe names the cluster stage's clusters (found in all codes without labels).
"""

import pandas as pd

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, atomic_path, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params
from vaepipe.core.runtime import make_deterministic, provenance, select_device
from vaepipe.data.datasets import load_split, train_val_indices
from vaepipe.latent.clustering import load_clusters
from vaepipe.latent.downstream import chosen_on_validation, fit_and_score, label_efficiency
from vaepipe.vae.codes import posterior_means
from vaepipe.vae.model import load_model



def main() -> None:
    params = load_params()
    dp = params.downstream
    make_deterministic(params.seed)
    model = load_model(paths.VAE, select_device(params.device))
    device = next(model.parameters()).device
    (train_x, train_y), (test_x, test_y) = (load_split(paths.RAW, split) for split in ("train", "test"))
    # Codes of the grey images: see vaepipe.vae.codes.posterior_means.
    train_codes, test_codes = (posterior_means(model, x.to(device)).numpy() for x in (train_x, test_x))
    train_y, test_y = train_y.numpy(), test_y.numpy()
    clusters = load_clusters(paths.CLUSTERS, len(train_y), len(test_y))
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
    metrics["run"] = provenance(device)
    with all_or_nothing():
        write_json(paths.metrics("downstream"), metrics)
        with atomic_path(f"{paths.plots('downstream')}/confusion.csv") as tmp:
            pd.DataFrame({"actual": test_y, "predicted": full[best]["test"][1]}).to_csv(tmp, index=False)
    print(f"test accuracy of the probe chosen on validation ({best}): {metrics['accuracy']:.4f}; "
          + ", ".join(f"{b} labels ({metrics[f'probe_{b}_labels']}): {metrics[f'accuracy_{b}_labels']:.4f}"
                      for b in dp.label_budgets))


if __name__ == "__main__":
    run_stage(main)

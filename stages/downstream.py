"""Stage `downstream`: classifiers on the posterior means mu(x); accuracy with all labels and with few."""

import pandas as pd

from vaepipe.artifacts import all_or_nothing, atomic_path, write_json
from vaepipe.cli import run_stage
from vaepipe.data import load_split
from vaepipe.downstream import fit_and_score, label_efficiency
from vaepipe.latent import encode_means
from vaepipe.model import load_model
from vaepipe.params import load_params
from vaepipe.runtime import make_deterministic, select_device

DATA_DIR = "data/raw"
MODEL_PATH = "models/vae.safetensors"
METRICS_PATH = "metrics/downstream.json"
PREDICTIONS_PATH = "plots/downstream/confusion.csv"


def main() -> None:
    params = load_params()
    dp = params.downstream
    make_deterministic(params.seed)
    model = load_model(MODEL_PATH, select_device(params.device))
    device = next(model.parameters()).device
    (train_x, train_y), (test_x, test_y) = (load_split(DATA_DIR, split) for split in ("train", "test"))
    train_codes, test_codes = (encode_means(model, x.to(device)).numpy() for x in (train_x, test_x))
    train_y, test_y = train_y.numpy(), test_y.numpy()

    full = fit_and_score(train_codes, train_y, test_codes, test_y, dp.knn_neighbors, params.seed)
    best = max(full, key=lambda name: full[name][0])
    metrics = {"accuracy": full[best][0]}
    metrics.update({f"{name}_accuracy": acc for name, (acc, _) in full.items()})
    for budget in dp.label_budgets:
        few = label_efficiency(train_codes, train_y, test_codes, test_y, budget, dp.label_draws,
                               dp.knn_neighbors, params.seed)
        metrics[f"accuracy_{budget}_labels"] = max(few.values())
        metrics.update({f"{name}_accuracy_{budget}_labels": acc for name, acc in few.items()})
    with all_or_nothing():
        write_json(METRICS_PATH, metrics)
        with atomic_path(PREDICTIONS_PATH) as tmp:
            pd.DataFrame({"actual": test_y, "predicted": full[best][1]}).to_csv(tmp, index=False)
    print(f"accuracy on test codes: {full[best][0]:.4f} ({best}); "
          + ", ".join(f"{b} labels: {metrics[f'accuracy_{b}_labels']:.4f}" for b in dp.label_budgets))


if __name__ == "__main__":
    run_stage(main)

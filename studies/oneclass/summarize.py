"""Per class, the test AUROC of every score, the means over classes, and the score chosen by its mean validation
AUROC, for each dataset of params.yaml → metrics.json; and a table per dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from oneclass_params import OneClassParams  # noqa: E402

CLASSES = range(10)


def summary(results: dict[int, dict]) -> dict:
    scores = [name for name, value in results[0].items() if isinstance(value, dict)]  # the anomaly scores
    metrics = {f"class_{c}": {s: r[s]["auroc"] for s in scores} for c, r in results.items()}
    metrics["mean"] = {s: sum(r[s]["auroc"] for r in results.values()) / len(results) for s in scores}
    metrics["val_mean"] = {s: sum(r[s]["val_auroc"] for r in results.values()) / len(results) for s in scores}
    chosen = max(scores, key=lambda s: metrics["val_mean"][s])
    metrics["chosen"] = {"score": chosen, "auroc": metrics["mean"][chosen], "val_auroc": metrics["val_mean"][chosen]}
    return metrics


def main() -> None:
    params = load_params(HERE / "params.yaml", OneClassParams)
    metrics = {}
    for dataset in params.datasets:
        results = {c: json.loads((HERE / f"results/{dataset}/{c}.json").read_text()) for c in CLASSES}
        metrics[dataset] = m = summary(results)
        scores = list(m["mean"])
        print(f"{dataset}\n| class | " + " | ".join(f"`{s}`" for s in scores) + " |")
        print("| --- " * (len(scores) + 1) + "|")
        for c in CLASSES:
            print(f"| {c} | " + " | ".join(f"{m[f'class_{c}'][s]:.4f}" for s in scores) + " |")
        print("| **mean** | " + " | ".join(f"**{m['mean'][s]:.4f}**" for s in scores) + " |")
        print("| validation mean | " + " | ".join(f"{m['val_mean'][s]:.4f}" for s in scores) + " |")
        print(f"chosen on validation: {m['chosen']['score']}, mean test AUROC {m['chosen']['auroc']:.4f}\n")
    write_json(HERE / "metrics.json", metrics)


if __name__ == "__main__":
    main()

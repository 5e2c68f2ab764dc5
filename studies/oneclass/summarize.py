"""Per-digit test AUROC of every score, the means over digits, and the score chosen by its mean validation AUROC
→ metrics.json; and the table for the docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402

DIGITS = range(10)


def main() -> None:
    results = {d: json.loads((HERE / f"results/{d}.json").read_text()) for d in DIGITS}
    scores = [name for name, value in results[0].items() if isinstance(value, dict)]  # the anomaly scores
    metrics = {f"digit_{d}": {s: r[s]["auroc"] for s in scores} for d, r in results.items()}
    metrics["mean"] = {s: sum(r[s]["auroc"] for r in results.values()) / len(results) for s in scores}
    metrics["val_mean"] = {s: sum(r[s]["val_auroc"] for r in results.values()) / len(results) for s in scores}
    chosen = max(scores, key=lambda s: metrics["val_mean"][s])
    metrics["chosen"] = {"score": chosen, "auroc": metrics["mean"][chosen], "val_auroc": metrics["val_mean"][chosen]}
    write_json(HERE / "metrics.json", metrics)
    print("| digit | " + " | ".join(f"`{s}`" for s in scores) + " | training images |")
    print("| --- " * (len(scores) + 2) + "|")
    for d, r in results.items():
        print(f"| {d} | " + " | ".join(f"{r[s]['auroc']:.4f}" for s in scores) + f" | {r['train_images']} |")
    print("| **mean** | " + " | ".join(f"**{metrics['mean'][s]:.4f}**" for s in scores) + " | |")
    print("| validation mean | " + " | ".join(f"{metrics['val_mean'][s]:.4f}" for s in scores) + " | |")
    print(f"chosen on validation: {chosen}, mean test AUROC {metrics['chosen']['auroc']:.4f}")


if __name__ == "__main__":
    main()

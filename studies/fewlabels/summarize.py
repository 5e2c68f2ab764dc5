"""Per dataset and label budget: the downstream stage's probes and the wide CNN student side by side, and the one
chosen by validation accuracy → metrics.json; and a table per dataset.

    python studies/fewlabels/summarize.py     # after student.py for each dataset of params.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.latent.downstream import chosen_on_validation  # noqa: E402
from fewlabels_params import FewLabelsParams  # noqa: E402

PROBES = ("logreg", "knn", "spread", "cluster")  # the downstream stage's few-label probes


def downstream_metrics(path: Path) -> dict:
    """The downstream stage's metrics: the file itself, or its entry in a study's collection of a run's metrics
    files (studies/fashion/metrics.json)."""
    metrics = json.loads(path.read_text())
    return metrics["metrics"]["metrics/downstream.json"] if "metrics" in metrics else metrics


def main() -> None:
    params = load_params(HERE / "params.yaml", FewLabelsParams)
    metrics = {}
    for dataset, run in params.datasets.items():
        pipeline = downstream_metrics(HERE / run.downstream)
        student = json.loads((HERE / f"results/{dataset}.json").read_text())
        metrics[dataset] = {}
        print(f"{dataset}\n| labels | " + " | ".join(f"`{p}`" for p in (*PROBES, "student")) + " | chosen | test |")
        print("| --- " * (len(PROBES) + 4) + "|")
        for budget in params.budgets:
            suffix = f"_{budget}_labels"
            if f"accuracy{suffix}" not in pipeline:
                raise PipelineError(f"{run.downstream}: has no {budget}-label results; add {budget} to its run's "
                                    "downstream.label_budgets")
            accuracies = {p: {"val": pipeline[f"{p}_val_accuracy{suffix}"], "test": pipeline[f"{p}_accuracy{suffix}"]}
                          for p in PROBES}
            accuracies["student"] = student[suffix[1:]]["student"]
            chosen, chosen_metrics = chosen_on_validation(accuracies, suffix)
            metrics[dataset].update(chosen_metrics)
            print(f"| {budget} | " + " | ".join(f"{a['val']:.4f} / {a['test']:.4f}" for a in accuracies.values())
                  + f" | `{chosen}` | **{accuracies[chosen]['test']:.4f}** |")
        print("(validation / test accuracy; the probe is chosen on validation)\n")
    write_json(HERE / "metrics.json", metrics)


if __name__ == "__main__":
    run_stage(main)

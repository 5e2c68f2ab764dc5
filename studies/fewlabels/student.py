"""Few labels on one dataset: for each label budget and draw, the clusters of the default pipeline's run named by
the labels (cluster-then-label, the downstream stage's `cluster` probe) and a wide CNN student of the named
clusters and the labels (vaepipe.latent.self_labelling.few_label_student); the validation and test accuracy of
each → results/<dataset>.json.

    python studies/fewlabels/student.py mnist     # DVC runs it for each dataset of params.yaml

The labels are drawn from the training part of the pipeline's split, and the validation part (never trained on
with its labels) scores, as in the downstream stage; the CNN trains on all training and test images with their
clusters' names, as the clusters were found in all codes without labels.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import ParamsError, PipelineError  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.core.paths import CLASSES  # noqa: E402
from vaepipe.core.runtime import make_deterministic, resolved_precision, select_device  # noqa: E402
from vaepipe.data.datasets import load_split, train_val_indices  # noqa: E402
from vaepipe.latent.clustering import load_clusters  # noqa: E402
from vaepipe.latent.downstream import balanced_draw, cluster_then_label_scores  # noqa: E402
from vaepipe.latent.self_labelling import few_label_student  # noqa: E402
from fewlabels_params import FewLabelsParams  # noqa: E402


def main() -> None:
    params = load_params(HERE / "params.yaml", FewLabelsParams)
    if len(sys.argv) != 2 or sys.argv[1] not in params.datasets:
        raise PipelineError(f"usage: student.py DATASET, one of {', '.join(params.datasets)} "
                            f"(got {' '.join(sys.argv[1:]) or 'nothing'})")
    dataset = sys.argv[1]
    pipeline = load_params(REPO_ROOT / "params.yaml")  # its split: the probes' labels and validation images
    make_deterministic(params.seed)
    device = select_device(params.device)
    precision = resolved_precision(params.precision, device)
    (train_x, train_y), (test_x, test_y) = (load_split(HERE.parent / "oneclass/data" / dataset, split)
                                            for split in ("train", "test"))
    clusters = load_clusters(HERE / params.datasets[dataset].clusters, len(train_y), len(test_y))
    fit, val = (idx.numpy() for idx in train_val_indices(len(train_y), pipeline.train.val_size, pipeline.seed))
    images, all_clusters = torch.cat([train_x, test_x]), np.concatenate([clusters["train"], clusters["test"]])
    train_y, test_y = train_y.numpy(), test_y.numpy()
    test = np.arange(len(train_y), len(images))
    per_class, available = -(-max(params.budgets) // CLASSES), int(np.bincount(train_y[fit]).min())
    if per_class > available:
        raise ParamsError("budgets", f"has {max(params.budgets)}: a balanced draw takes {per_class} labels of each "
                          f"class, and the training part of {dataset} has only {available} images of one")
    rng = np.random.default_rng(params.seed)
    results = {"dataset": dataset, "draws": params.draws, "precision": precision}
    for budget in params.budgets:
        scores: dict[str, dict[str, list[float]]] = {"cluster": {"val": [], "test": []},
                                                     "student": {"val": [], "test": []}}
        for draw in range(params.draws):
            labelled = fit[balanced_draw(train_y[fit], budget, rng)]
            for set_name, accuracy in cluster_then_label_scores(
                    clusters["train"][labelled], train_y[labelled],
                    {"val": (clusters["train"][val], train_y[val]), "test": (clusters["test"], test_y)}).items():
                scores["cluster"][set_name].append(accuracy)
            start = time.perf_counter()
            predicted = few_label_student(images, all_clusters, labelled, train_y[labelled], CLASSES,
                                          repeats=params.repeats, epochs=params.epochs, seed=params.seed + draw,
                                          precision=precision, device=device).argmax(1)
            scores["student"]["val"].append(float(np.mean(predicted[val] == train_y[val])))
            scores["student"]["test"].append(float(np.mean(predicted[test] == test_y)))
            print(f"{dataset}, {budget} labels, draw {draw + 1}: student validation {scores['student']['val'][-1]:.4f}, "
                  f"test {scores['student']['test'][-1]:.4f} ({time.perf_counter() - start:.0f} s); named clusters "
                  f"{scores['cluster']['val'][-1]:.4f}, {scores['cluster']['test'][-1]:.4f}", flush=True)
        results[f"{budget}_labels"] = {probe: {set_name: float(np.mean(accs)) for set_name, accs in per_set.items()}
                                       for probe, per_set in scores.items()}
    # No timings in the file: the same settings must give the same bytes.
    write_json(HERE / f"results/{dataset}.json", results)


if __name__ == "__main__":
    run_stage(main)

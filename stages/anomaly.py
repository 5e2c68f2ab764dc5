"""Stage `anomaly`: is this image normal? Every score of vaepipe.anomaly.detector on two tasks, normal test images
against (1) the out-of-distribution dataset's test images and (2) each MNIST-C corruption of them. Each
task's best score and the detector's score are chosen on validation images; the test set only scores them.
Writes the metrics, ROC curves, figures, and the detector that `vaepipe-anomaly` scores new images with.


    dvc repro anomaly
    dvc exp run -S anomaly.ood_dataset=fashion-mnist -S anomaly.k=32
    vaepipe-anomaly my_digit.png               # score your own images with the detector
"""

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError

from vaepipe.anomaly.detector import (Detector, NormalProfile, SCORES, evaluate_detection, image_statistics, roc_table,
                                      scores_from)
from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, atomic_path, file_sha256, load_tensors, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import ArtifactError
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.runtime import make_deterministic, provenance, resolved_precision, select_device
from vaepipe.data.corruptions import CORRUPTIONS
from vaepipe.data.datasets import anomaly_test_images, load_split, train_val_indices
from vaepipe.figures.plots import histograms, labelled_rows
from vaepipe.vae.model import load_model

N_SHOWN = 12  # images per row in the figures


def load_corrupted(split: str) -> dict[str, torch.Tensor]:
    path = f"{paths.CORRUPTED}/{split}.safetensors"
    try:
        tensors, _ = load_tensors(path)
    except (OSError, SafetensorError) as exc:
        raise ArtifactError(f"{path}: cannot be read ({exc}); run `dvc repro corrupt`") from None
    if sorted(tensors) != sorted(CORRUPTIONS):
        raise ArtifactError(f"{path}: holds other corruptions than vaepipe.data.corruptions; run `dvc repro corrupt`")
    return {name: tensors[name].float() / 255 for name in CORRUPTIONS}


def write_csv(frame: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def main() -> None:
    params = load_params()
    ap = params.anomaly
    make_deterministic(params.seed)
    device = select_device(params.device)
    model = load_model(paths.VAE, device)
    train_x, _ = load_split(paths.RAW, "train")
    ood_train, _ = load_split(paths.OOD, "train")
    test_x, ood_test = (anomaly_test_images(data_dir, ap.test_subset) for data_dir in (paths.RAW, paths.OOD))
    fit, val = train_val_indices(len(train_x), params.train.val_size, params.seed)
    require_at_most("anomaly.n_fit", ap.n_fit, len(fit), "the training part of the training split")
    require_at_most("anomaly.n_val", ap.n_val, len(ood_train), f"{params.ood_dataset}'s training split")
    images = {"val": {"normal": train_x[val], "ood": ood_train[: ap.n_val], **load_corrupted("val")},
              "test": {"normal": test_x, "ood": ood_test, **load_corrupted("test")}}

    # evaluate.precision: the importance sampling's passes, as in evaluate (bf16 moved its NLL by < 0.005 nats).
    precision = resolved_precision(params.evaluate.precision, device)  # fp32 | bf16, as the detector records it

    def statistics(x: torch.Tensor) -> dict[str, np.ndarray]:
        return image_statistics(model, x.to(device), ap.k, precision)
    profile = NormalProfile.fit(statistics(train_x[fit[: ap.n_fit]]), params.seed)
    scores = {split: {name: scores_from(statistics(x), profile) for name, x in sets.items()}
              for split, sets in images.items()}
    metrics, thresholds = evaluate_detection(scores, list(CORRUPTIONS), ap.false_positive_rate)
    chosen, corruption_best = metrics["detector"]["score"], metrics["corruption"]["best"]["score"]
    test = scores["test"]

    with all_or_nothing():
        write_json(paths.metrics("anomaly"), {"ood_dataset": params.ood_dataset, **metrics,
                                                    "run": provenance(device, params.evaluate.precision)})
        Detector(profile, thresholds, chosen, ap.false_positive_rate, ap.k, precision,
                 file_sha256(paths.VAE)).save(paths.ANOMALY_DETECTOR)
        for s in SCORES:
            write_csv(roc_table(test["normal"][s], test["ood"][s]), f"{paths.plots('anomaly')}/roc/ood/{s}.csv")
        for name in CORRUPTIONS:
            write_csv(roc_table(test["normal"][corruption_best], test[name][corruption_best]),
                      f"{paths.plots('anomaly')}/roc/corruption/{name}.csv")
        write_csv(pd.DataFrame({"corruption": list(CORRUPTIONS), "auroc": [
            metrics["corruption"][name][corruption_best]["auroc"] for name in CORRUPTIONS]}),
            f"{paths.plots('anomaly')}/corruption_auroc.csv")
        all_corrupted = {s: np.concatenate([test[name][s] for name in CORRUPTIONS]) for s in SCORES}
        histograms({**{("OOD", s): {"normal test": test["normal"][s], params.ood_dataset: test["ood"][s]}
                       for s in SCORES},
                    **{("corrupted", s): {"normal test": test["normal"][s], "MNIST-C, all types": all_corrupted[s]}
                       for s in SCORES}},
                   "Anomaly scores of test images (higher = more anomalous)", f"{paths.plots('anomaly')}/histograms.png")
        order, ood_order = np.argsort(test["normal"][chosen]), np.argsort(test["ood"][chosen])
        labelled_rows({"most anomalous test": test_x[order[::-1][:N_SHOWN].copy()],
                       "least anomalous test": test_x[order[:N_SHOWN].copy()],
                       f"most normal {params.ood_dataset}": ood_test[ood_order[:N_SHOWN].copy()]},
                      f"Extremes of the {chosen} score", f"{paths.plots('anomaly')}/extremes.png")
        labelled_rows({"clean": test_x[:N_SHOWN], **{name: images["test"][name][:N_SHOWN] for name in CORRUPTIONS}},
                      "MNIST-C corruptions of the first test images", f"{paths.plots('anomaly')}/corruptions.png")
    print(f"OOD vs {params.ood_dataset}: best {metrics['ood']['best']['score']} AUROC "
          f"{metrics['ood']['best']['auroc']:.4f}; corruptions: best {corruption_best} mean AUROC "
          f"{metrics['corruption']['best']['auroc']:.4f}; detector: {chosen}")


if __name__ == "__main__":
    run_stage(main)

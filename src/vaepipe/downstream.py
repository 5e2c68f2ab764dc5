"""Classifiers fitted on latent codes: how much label information the unsupervised codes carry.

Probes are fitted on the training split and chosen by their accuracy on the validation split; the
test accuracy is reported for the chosen probe (and, for reference, for each probe), never used to choose.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vaepipe.errors import ParamsError


def classifiers(knn_neighbors: int, seed: int) -> dict:
    """Fresh, unfitted probes by name. Codes are standardised so logistic regression converges quickly."""
    return {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)),
        "knn": KNeighborsClassifier(n_neighbors=knn_neighbors),
    }


def balanced_draw(labels: np.ndarray, n_labels: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n_labels` examples, the same number per class (as near as divisibility allows)."""
    classes, counts = np.unique(labels, return_counts=True)
    per_class = np.full(len(classes), n_labels // len(classes))
    per_class[: n_labels % len(classes)] += 1
    if (short := np.flatnonzero(per_class > counts)).size:
        c = short[0]
        raise ParamsError("downstream.label_budgets", f"has {n_labels}: a balanced draw takes {per_class[c]} labels "
                          f"of class {classes[c]}, which has only {counts[c]} training images")
    picks = [rng.choice(np.flatnonzero(labels == c), size=m, replace=False) for c, m in zip(classes, per_class)]
    return np.sort(np.concatenate(picks))


def fit_and_score(train_x, train_y, eval_sets: dict[str, tuple[np.ndarray, np.ndarray]], knn_neighbors: int,
                  seed: int) -> dict[str, dict[str, tuple[float, np.ndarray]]]:
    """Each probe fitted on (train_x, train_y): its accuracy and predictions on every (x, y) evaluation set,
    as {probe: {set name: (accuracy, predictions)}}."""
    results = {}
    for name, clf in classifiers(min(knn_neighbors, len(train_y)), seed).items():
        clf.fit(train_x, train_y)
        results[name] = {}
        for set_name, (x, y) in eval_sets.items():
            predicted = clf.predict(x)
            results[name][set_name] = (float(np.mean(predicted == y)), predicted)
    return results


def label_efficiency(train_x, train_y, eval_sets: dict[str, tuple[np.ndarray, np.ndarray]], budget: int,
                     draws: int, knn_neighbors: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean accuracy of each probe on each evaluation set over `draws` balanced, seeded draws of `budget`
    training labels, as {probe: {set name: accuracy}}."""
    rng = np.random.default_rng(seed)
    scores: dict[str, dict[str, list[float]]] = {}
    for _ in range(draws):
        idx = balanced_draw(train_y, budget, rng)
        for name, per_set in fit_and_score(train_x[idx], train_y[idx], eval_sets, knn_neighbors, seed).items():
            for set_name, (acc, _) in per_set.items():
                scores.setdefault(name, {}).setdefault(set_name, []).append(acc)
    return {name: {set_name: float(np.mean(accs)) for set_name, accs in per_set.items()}
            for name, per_set in scores.items()}


def chosen_on_validation(accuracies: dict[str, dict[str, float]], suffix: str = "") -> tuple[str, dict[str, float]]:
    """The probe with the best `val` accuracy, and the metrics: `accuracy<suffix>` (the chosen probe's test
    accuracy), and each probe's `<probe>_accuracy<suffix>` (test) and `<probe>_val_accuracy<suffix>`."""
    chosen = max(accuracies, key=lambda name: accuracies[name]["val"])
    metrics = {f"accuracy{suffix}": accuracies[chosen]["test"]}
    for name, per_set in accuracies.items():
        metrics[f"{name}_accuracy{suffix}"] = per_set["test"]
        metrics[f"{name}_val_accuracy{suffix}"] = per_set["val"]
    return chosen, metrics

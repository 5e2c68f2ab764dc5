"""Classifiers fitted on latent codes: how much label information the unsupervised codes carry."""

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


def fit_and_score(train_x, train_y, test_x, test_y, knn_neighbors: int, seed: int) -> dict[str, tuple[float, np.ndarray]]:
    """Accuracy and test predictions of each probe fitted on (train_x, train_y)."""
    results = {}
    for name, clf in classifiers(min(knn_neighbors, len(train_y)), seed).items():
        predicted = clf.fit(train_x, train_y).predict(test_x)
        results[name] = (float(np.mean(predicted == test_y)), predicted)
    return results


def label_efficiency(train_x, train_y, test_x, test_y, budget: int, draws: int, knn_neighbors: int,
                     seed: int) -> dict[str, float]:
    """Mean test accuracy of each probe over `draws` balanced, seeded draws of `budget` training labels."""
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {}
    for _ in range(draws):
        idx = balanced_draw(train_y, budget, rng)
        for name, (acc, _) in fit_and_score(train_x[idx], train_y[idx], test_x, test_y, knn_neighbors, seed).items():
            scores.setdefault(name, []).append(acc)
    return {name: float(np.mean(accs)) for name, accs in scores.items()}

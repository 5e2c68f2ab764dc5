"""Clusters of the latent codes, found without labels, and how well they match the classes.

Four clusterings of the posterior means mu(x): k-means and a Gaussian mixture on the codes themselves, and
the same two on a UMAP embedding of the codes. The Gaussian mixture on UMAP is the N2D recipe (McConville
et al. 2020) and the headline: UMAP keeps the local neighbourhoods, in which digits of one class lie
together, and pulls them into compact blobs that a mixture of Gaussians separates; k-means on the raw codes
cuts the code space into cells that ignore that structure. The headline refines a finer mixture on the same
embedding by self-labelling (vaepipe.latent.self_labelling). Labels are used only to score a clustering:
accuracy under the best one-to-one matching of clusters to classes, NMI and ARI.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from vaepipe.core.artifacts import load_described_tensors
from vaepipe.core.errors import ArtifactError

METHODS = ("kmeans_codes", "gmm_codes", "kmeans_umap", "gmm_umap")
# The clustering self-labelling refines (vaepipe.latent.self_labelling), and the name of the refined one.
REFINED, SELF_LABELLED = "gmm_umap", "self_labelled"
# UMAP's min_dist for clustering: 0 packs neighbours tightly, which is what a clustering wants (N2D).
CLUSTER_MIN_DIST = 0.0
UNMATCHED = -1
GMM_CODES_FIT = 20_000


def cluster_to_class(labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
    """The one-to-one matching of cluster ids to class labels that puts the most points in their own class
    (Hungarian algorithm on the cluster x class counts). With more clusters than classes, some clusters
    stay unmatched and are absent from the result."""
    cluster_ids, cluster_index = np.unique(clusters, return_inverse=True)
    class_ids, class_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(class_ids)), dtype=np.int64)
    np.add.at(counts, (cluster_index, class_index), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(cluster_ids[r]): int(class_ids[c]) for r, c in zip(rows, cols)}


def matched_labels(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Each point's cluster, named by the class it is matched to (UNMATCHED for a cluster matched to none)."""
    matching = cluster_to_class(labels, clusters)
    return np.array([matching.get(int(c), UNMATCHED) for c in clusters])


def in_class_order(labels: np.ndarray, clusters: np.ndarray, n_clusters: int) -> list[int]:
    """The cluster ids 0..n_clusters-1 sorted by the class each is matched to; unmatched clusters last."""
    matching = cluster_to_class(labels, clusters)
    return sorted(range(n_clusters), key=lambda k: (k not in matching, matching.get(k, k)))


def matched_class_groups(labels: np.ndarray, clusters: np.ndarray,
                         classes: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each point's cluster as the index of the class it is matched to (len(classes) for clusters matched
    to none), and the group names: for colouring clusters like the classes they stand for."""
    matching = cluster_to_class(labels, clusters)
    groups = np.array([matching.get(int(k), len(classes)) for k in clusters])
    return groups, classes + ("unmatched",) * bool(np.any(groups == len(classes)))


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of points whose cluster is matched to their own class, under the best one-to-one matching."""
    return float(np.mean(matched_labels(labels, clusters) == labels))


def clustering_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    return {"accuracy": clustering_accuracy(labels, clusters),
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters))}


def fit_clusterings(codes: np.ndarray, embedding: np.ndarray, n_clusters: int, gmm_inits: int,
                    seed: int) -> dict[str, tuple[np.ndarray, KMeans | GaussianMixture]]:
    """Every method of METHODS fitted: {method: (each point's cluster, the fitted model)}.

    The mixture on the embedding is restarted `gmm_inits` times and the fit of highest likelihood is kept:
    a single start now and then merges two digits into one component (seen on MNIST: accuracy 0.84 instead
    of 0.975), and the likelihood, which needs no label, tells the two fits apart. The mixture on the codes
    (full covariances in latent_dim dimensions: 6.5 s a start on 70,000 codes here, against 0.9 s in the
    10-D embedding) starts once, fitted on a seeded draw of GMM_CODES_FIT codes, then assigns them all.
    """
    fit_rows = np.random.default_rng(seed).permutation(len(codes))[:GMM_CODES_FIT]
    fitted = {}
    for space, points, inits, rows in (("codes", codes, 1, fit_rows), ("umap", embedding, gmm_inits, slice(None))):
        kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(points)
        fitted[f"kmeans_{space}"] = (kmeans.labels_, kmeans)
        fitted[f"gmm_{space}"] = fit_mixture(points, n_clusters, inits, seed, rows)
    return fitted


def fit_mixture(points: np.ndarray, n_components: int, inits: int, seed: int,
                rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, GaussianMixture]:
    """Each point's component, and the Gaussian mixture (full covariances) of highest likelihood of `inits`
    starts, fitted on `points[rows]`."""
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", n_init=inits,
                          random_state=seed).fit(points[rows])
    return gmm.predict(points), gmm


def most_central(points: np.ndarray, clusters: np.ndarray, gmm: GaussianMixture, n: int) -> dict[int, np.ndarray]:
    """Per non-empty cluster, the indices of its `n` members of highest density under its own mixture component."""
    central = {}
    for k in np.unique(clusters):
        members = np.flatnonzero(clusters == k)
        density = multivariate_normal(gmm.means_[k], gmm.covariances_[k], allow_singular=True).logpdf(points[members])
        central[int(k)] = members[np.argsort(-np.atleast_1d(density), kind="stable")[:n]]
    return central


def most_confident(probs: np.ndarray, clusters: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """Per non-empty cluster, the indices of its `n` members to which a classifier's probabilities `probs`
    [N, n_clusters] give their own cluster the highest probability."""
    central = {}
    for k in np.unique(clusters):
        members = np.flatnonzero(clusters == k)
        central[int(k)] = members[np.argsort(-probs[members, k], kind="stable")[:n]]
    return central


def cluster_means(codes: np.ndarray, clusters: np.ndarray, n_clusters: int) -> np.ndarray:
    """The mean code of each cluster's members (zeros for an empty cluster): [n_clusters, latent_dim]."""
    sums = np.zeros((n_clusters, codes.shape[1]))
    np.add.at(sums, clusters, codes)
    sizes = np.bincount(clusters, minlength=n_clusters)
    return sums / np.maximum(sizes, 1)[:, None]


def load_clusters(path: str, n_train: int | None, n_test: int) -> dict[str, np.ndarray]:
    """The cluster stage's file: `train` and `test` cluster assignments and `test_map`, the 2-D UMAP map of
    the test codes; checked against the image counts (the training count where the caller has it)."""
    clusters, _ = load_described_tensors(path, "clustering", "clusters", "cluster")
    counts = {"train": n_train, "test": n_test, "test_map": n_test}
    if sorted(clusters) != sorted(counts) or any(n is not None and len(clusters[key]) != n for key, n in counts.items()):
        raise ArtifactError(f"{path}: does not cluster this dataset's training and test images; "
                            "run `dvc repro cluster`")
    return {key: tensor.numpy() for key, tensor in clusters.items()}

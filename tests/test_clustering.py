import numpy as np
import pytest

from vaepipe.latent.clustering import (cluster_means, cluster_to_class, clustering_accuracy, clustering_scores,
                                       fit_clusterings, fit_mixture, in_class_order, matched_class_groups,
                                       most_confident)
from vaepipe.latent.downstream import cluster_then_label_scores, name_clusters
from vaepipe.latent.embedding import umap_embedding


def test_a_permuted_labelling_is_a_perfect_clustering():
    labels = np.random.default_rng(0).integers(0, 10, size=500)
    clusters = np.array([3, 7, 0, 9, 1, 8, 2, 6, 4, 5])[labels]
    assert clustering_accuracy(labels, clusters) == 1.0
    assert clustering_scores(labels, clusters) == {"accuracy": 1.0, "nmi": 1.0, "ari": 1.0}


def test_clustering_accuracy_hand_worked():
    # Counts (cluster x class): cluster 5 holds classes 0,0,1; cluster 6 holds 1,1,2; cluster 7 holds 2.
    # Majority voting would name clusters 5 and 6 by 0 and 1 and cluster 7 by 2: the same here, 5 of 7.
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    clusters = np.array([5, 5, 5, 6, 6, 6, 7])
    assert cluster_to_class(labels, clusters) == {5: 0, 6: 1, 7: 2}
    assert clustering_accuracy(labels, clusters) == pytest.approx(5 / 7)
    # One-to-one, unlike majority voting: two clusters both mostly class 0 cannot both be named 0.
    # Cluster 0 = {0, 0, 1}, cluster 1 = {0, 0, 0, 1}: best matching 1->0 (3 right) and 0->1 (1 right).
    labels = np.array([0, 0, 1, 0, 0, 0, 1])
    clusters = np.array([0, 0, 0, 1, 1, 1, 1])
    assert cluster_to_class(labels, clusters) == {1: 0, 0: 1}
    assert clustering_accuracy(labels, clusters) == pytest.approx(4 / 7)


def test_more_clusters_than_classes_leave_one_unmatched_and_wrong():
    labels = np.array([0, 0, 1, 1])
    clusters = np.array([0, 1, 2, 2])
    assert clustering_accuracy(labels, clusters) == pytest.approx(3 / 4)
    groups, names = matched_class_groups(labels, clusters, ("zero", "one"))
    assert names == ("zero", "one", "unmatched") and sorted(groups[:2]) == [0, 2] and list(groups[2:]) == [1, 1]
    assert in_class_order(labels, clusters, 3)[1] == 2  # the cluster matched to class 1 comes second


def test_cluster_means_and_cluster_then_label_hand_worked():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    np.testing.assert_allclose(cluster_means(codes, np.array([0, 0, 2]), 3), [[1, 0], [0, 0], [10, 10]])
    # Cluster 0 has labels 3, 3, 5 -> 3; cluster 1 has a 4-4 tie of 1 and 2 -> 1 (the smaller);
    # cluster 2 has no labelled member, so its code counts as an error.
    labelled = np.array([0, 0, 0, 1, 1])
    labels = np.array([3, 3, 5, 2, 1])
    np.testing.assert_array_equal(name_clusters(labelled, labels, 3), [3, 1, -1])
    scores = cluster_then_label_scores(labelled, labels, {"test": (np.array([0, 1, 2, 0]), np.array([3, 1, 2, 5]))})
    assert scores == {"test": 0.5}


def blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three far-apart Gaussian blobs in 6 dimensions."""
    labels = rng.integers(0, 3, size=n)
    centres = 12.0 * np.eye(3, 6)
    return (centres[labels] + rng.normal(size=(n, 6))).astype(np.float32), labels


def test_umap_clusterings_find_separated_blobs_and_repeat_bit_for_bit():
    codes, labels = blobs(600, np.random.default_rng(0))
    first = umap_embedding(codes, 3, 10, seed=4, min_dist=0.0, n_epochs=50)
    second = umap_embedding(codes, 3, 10, seed=4, min_dist=0.0, n_epochs=50)
    assert first.shape == (600, 3) and first.tobytes() == second.tobytes()
    fitted = fit_clusterings(codes, first, n_clusters=3, gmm_inits=2, seed=0)
    assert set(fitted) == {"kmeans_codes", "gmm_codes", "kmeans_umap", "gmm_umap"}
    for method, (clusters, _) in fitted.items():
        assert clustering_accuracy(labels, clusters) == 1.0, method
    # and on noise, no clustering matches the labels much better than chance (1/3)
    noise = np.random.default_rng(1).normal(size=(600, 6)).astype(np.float32)
    fitted = fit_clusterings(noise, noise[:, :3], n_clusters=3, gmm_inits=1, seed=0)
    assert all(clustering_accuracy(labels, clusters) < 0.45 for clusters, _ in fitted.values())


def test_most_confident_members_hand_worked():
    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55]])
    clusters = probs.argmax(1)
    central = most_confident(probs, clusters, 2)
    assert set(central) == {0, 1}
    np.testing.assert_array_equal(central[0], [1, 3])  # 0.9, then 0.7 (0.6 left out)
    np.testing.assert_array_equal(central[1], [2, 4])  # 0.8, then 0.55
    # Every image in cluster 0: cluster 1, empty, has no entry, and n beyond a cluster's size gives all of it.
    everyone = most_confident(probs, np.zeros(5, dtype=int), 9)
    assert set(everyone) == {0} and list(everyone[0]) == [1, 3, 0, 4, 2]
    codes, labels = blobs(300, np.random.default_rng(0))
    clusters, gmm = fit_mixture(codes, 3, inits=2, seed=0)
    assert gmm.n_components == 3 and clustering_accuracy(labels, clusters) == 1.0

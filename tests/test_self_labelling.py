"""Self-labelling on real digits whose classes are known: it learns the classes through labels that are partly
wrong, and the augmentation it trains with moves digits a little, seeded."""

import numpy as np
import torch

from vaepipe.classifiers.convnet import augment
from vaepipe.data.datasets import load_split
from vaepipe.latent.self_labelling import few_label_student, merge_confused, self_label


def test_self_labelling_corrects_wrong_cluster_labels_and_repeats_bit_for_bit(mnist_raw):
    """2,000 training digits 0-4 whose 'clusters' are their classes with a fifth of them replaced at random (a
    clustering 80 % right): the CNN learns what most images of a cluster share, and predicts the true class of
    far more of them. Cluster ids need not be class ids: they are permuted."""
    images, labels = load_split(mnist_raw, "train")
    keep = torch.nonzero(labels < 5).flatten()[:2000]
    images, labels = images[keep], labels[keep].numpy()
    rng = np.random.default_rng(0)
    noisy = labels.copy()
    flipped = rng.random(len(noisy)) < 0.2
    noisy[flipped] = rng.integers(0, 5, size=int(flipped.sum()))
    ids = np.array([3, 0, 4, 1, 2])  # class c is cluster ids[c]
    clusters = ids[noisy]
    assert np.mean(clusters == ids[labels]) < 0.85
    probs = self_label(images, clusters, 5, epochs=3, seed=0, precision="fp32", device=torch.device("cpu"))
    assert probs.shape == (len(images), 5) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.mean(probs.argmax(1) == ids[labels]) > 0.95
    # Seeded: the same CNN again, checked on a shorter run.
    once, again = (self_label(images[:500], clusters[:500], 5, epochs=1, seed=0, precision="fp32",
                              device=torch.device("cpu")) for _ in range(2))
    np.testing.assert_array_equal(once, again)
    # Trained on a seeded fifth of them, it still predicts every image, and mostly right.
    quick = self_label(images, clusters, 5, epochs=3, seed=0, precision="fp32", device=torch.device("cpu"), subset=400)
    assert len(quick) == len(images) and np.mean(quick.argmax(1) == ids[labels]) > 0.85


def test_few_label_student_learns_the_classes_where_the_named_clusters_are_wrong(mnist_raw):
    """2,000 training digits 0-4 in 'clusters' that hold their classes, except that a fifth of the 3s sit in the
    2s' cluster, and one more cluster with no labelled member holds a few 4s. Named by 10 labels a class, the
    clusters are wrong about those 3s; the wide CNN learns the digits from all the others and gets most of them
    right, and the unnamed cluster's 4s (not trained on) are still predicted, and right."""
    images, labels = load_split(mnist_raw, "train")
    keep = torch.nonzero(labels < 5).flatten()[:2000]
    images, labels = images[keep], labels[keep].numpy()
    ids = np.array([3, 0, 4, 1, 2])  # class c is cluster ids[c]
    clusters = ids[labels]
    threes = np.flatnonzero(labels == 3)
    misplaced = threes[: len(threes) // 5]
    clusters[misplaced] = ids[2]
    clusters[np.flatnonzero(labels == 4)[:20]] = 5
    rng = np.random.default_rng(0)
    labelled = np.sort(np.concatenate([rng.choice(np.setdiff1d(np.flatnonzero(labels == c), misplaced), 10,
                                                  replace=False) for c in range(5)]))
    probs = few_label_student(images, clusters, labelled, labels[labelled], 5, repeats=5, epochs=3, seed=0,
                              precision="fp32", device=torch.device("cpu"))
    assert probs.shape == (len(images), 5) and np.allclose(probs.sum(1), 1, atol=1e-5)
    predicted = probs.argmax(1)
    assert np.mean(clusters == ids[labels]) < 0.96
    assert np.mean(predicted == labels) > 0.97
    assert np.mean(predicted[misplaced] == 3) > 0.8  # the names say 2 for every one of them
    assert np.mean(predicted[clusters == 5] == 4) > 0.8
    assert np.mean(predicted[labelled] == labels[labelled]) > 0.95


def test_augment_moves_a_digit_a_little_and_is_seeded(mnist_raw):
    images, _ = load_split(mnist_raw, "test")
    x = images[:200]
    moved = augment(x, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and 0 <= moved.min() and moved.max() <= 1
    torch.testing.assert_close(moved, augment(x, torch.Generator().manual_seed(0)), rtol=0, atol=0)
    assert not torch.equal(moved, augment(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(moved, x)

    def centre(images: torch.Tensor) -> torch.Tensor:  # each image's centre of mass, in pixels
        grid = torch.arange(28.0)
        square = images.view(-1, 28, 28)
        mass = square.sum((1, 2))
        return torch.stack([(square.sum(2) * grid).sum(1) / mass, (square.sum(1) * grid).sum(1) / mass], 1)
    # At most 1.4 pixels of shift, 10 degrees and 10 % of scale about the centre: a digit's centre of mass moves
    # less than 3 pixels, and the ink is kept within the interpolation's blur.
    assert (centre(moved) - centre(x)).norm(dim=1).max() < 3
    ink = x.sum(1)
    assert ((moved.sum(1) - ink).abs() / ink).mean() < 0.15


def test_merging_joins_the_halves_of_a_class_and_not_two_similar_classes():
    """Four classes of 100 images, over-clustered into six: classes A and B each split in halves that the CNN
    confuses (it gives the other half 0.3), classes C and D each one cluster but confused more (0.45 each way).
    With the cap (at most 1.5 x 100 images a cluster) the halves join and the four classes come back; without it,
    C and D, the most confused pair, merge first."""
    confusions = {(0, 1): 0.3, (2, 3): 0.3, (4, 5): 0.45}  # clusters: A1, A2, B1, B2, C, D
    probs = np.zeros((400, 6))
    clusters = np.repeat([0, 1, 2, 3, 4, 4, 5, 5], 50)
    for (i, j), p in confusions.items():
        for own, other in ((i, j), (j, i)):
            probs[clusters == own, own], probs[clusters == own, other] = 1 - p, p
    classes = np.repeat([0, 1, 2, 3], 100)
    capped = merge_confused(probs, 4, max_share=1.5)
    assert len(set(capped)) == len(set(zip(capped, classes))) == 4  # the classes, up to their ids
    uncapped = merge_confused(probs, 4, max_share=4.0)
    assert uncapped[200] == uncapped[300]  # C with D; then A's halves joined, and B's left apart
    assert len(set(uncapped[:100])) == 1 and len(set(uncapped[100:200])) == 2
    # Six clusters into six: nothing merges, each image keeps its most probable cluster.
    np.testing.assert_array_equal(merge_confused(probs, 6, max_share=1.5), clusters)
    # No merge fits under the cap (each would make a cluster of 100 > 1.0 x 400 / 5 images): the smallest two join.
    assert len(set(merge_confused(probs, 5, max_share=1.0))) == 5

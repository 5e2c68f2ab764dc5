"""Self-labelling: clusters of the codes refined by a CNN that learns them as if they were classes.

The CNN (vaepipe.classifiers.convnet) is trained on every image with its cluster as the label, each batch rotated,
scaled and shifted a little, and its predictions are the refined clusters: the self-labelling step of SCAN (Van
Gansbeke et al. 2020). The clusters say which images belong together; the CNN adds what the codes do not know,
that a digit shifted or turned a few degrees is the same digit, and a member the codes put on the wrong side of a
boundary is outvoted by the many images like it on the right side. No label is used.

With a few labels, the clusters take the names of their labelled members, and a CNN learns every image with
its cluster's name and the labelled images with their own labels (`few_label_student`): a student of the named
clusters that the labels correct where they disagree.

Self-labelling cannot split a cluster that holds two classes. So it starts from more clusters than classes, which
split such a blob, and merges the clusters the CNN confuses most (`merge_confused`) before it learns them again.
"""

from __future__ import annotations

import numpy as np
import torch

from vaepipe.classifiers.convnet import ImageClassifier, WideConvNet, train_convnet
from vaepipe.latent.downstream import name_clusters

# Adam's settings for the self-labelling CNN (the judge's).
BATCH_SIZE, LR = 128, 0.002


def self_label(images: torch.Tensor, clusters: np.ndarray, n_clusters: int, epochs: int, seed: int, precision: str,
               device: torch.device, subset: int = 0) -> np.ndarray:
    """Each image's refined cluster probabilities [N, n_clusters]: those of a CNN trained for `epochs` on
    (augmented `images` [N, 784], their `clusters`, ids 0 .. n_clusters - 1), for the image itself. `subset` > 0
    trains it on a seeded draw of that many images only (quick runs); every image is predicted."""
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:subset] if subset else slice(None)
    net = train_convnet(images[rows], torch.as_tensor(clusters, dtype=torch.int64)[rows], epochs=epochs,
                        batch_size=BATCH_SIZE, lr=LR, seed=seed, precision=precision, device=device, classes=n_clusters,
                        augmented=True)
    return net.predict(images)[0].numpy()


def merge_confused(probs: np.ndarray, n_clusters: int, max_share: float) -> np.ndarray:
    """Clusters 0 .. n_clusters - 1 of the images from a CNN's probabilities `probs` [N, K] over K >= n_clusters
    clusters: the two clusters it confuses most merged, their probabilities summed, until n_clusters remain; then
    each image's most probable one.

    The confusion of two clusters is the mean probability the members of each give the other, summed both ways. A
    merge may make a cluster of at most `max_share` x N / n_clusters images (when no merge may, the two smallest
    clusters merge): a cluster the size of two classes is most likely two classes, not two halves of one. Without
    that cap, two similar classes merge first (on Fashion-MNIST's validation images, from 20 clusters: accuracy 0.56
    without it, 0.65 with a cap of 1.5).
    """
    probs = probs.astype(np.float64)
    limit = max_share * len(probs) / n_clusters
    while probs.shape[1] > n_clusters:
        k = probs.shape[1]
        members = np.eye(k)[probs.argmax(1)]  # [N, K] one-hot
        sizes = members.sum(0)
        confusion = members.T @ probs / np.maximum(sizes, 1)[:, None]  # row i: its members' mean probabilities
        merged_sizes = sizes[:, None] + sizes[None, :] + np.diag(np.full(k, np.inf))
        allowed = merged_sizes <= limit
        score = np.where(allowed, confusion + confusion.T, -np.inf) if allowed.any() else -merged_sizes
        i, j = sorted(np.unravel_index(np.argmax(score), score.shape))
        probs[:, i] += probs[:, j]
        probs = np.delete(probs, j, axis=1)
    return probs.argmax(1)


def few_label_student(images: torch.Tensor, clusters: np.ndarray, labelled: np.ndarray, labels: np.ndarray,
                      classes: int, *, repeats: int, epochs: int, seed: int, precision: str, device: torch.device,
                      network: type[ImageClassifier] = WideConvNet) -> np.ndarray:
    """Each image's class probabilities [N, classes] from a CNN (`network`) trained for `epochs` on the augmented
    `images` [N, 784]: each image with its cluster's name (its `clusters` id named by the labelled images,
    `name_clusters`), except the `labelled` images (indices), which carry their own `labels` and are repeated
    `repeats` more times, so that few labels weigh against the many names. Images of a cluster without a labelled
    member are not trained on; every image is predicted."""
    named = name_clusters(clusters[labelled], labels, int(clusters.max()) + 1)[clusters]
    named[labelled] = labels
    rows = np.concatenate([np.flatnonzero(named >= 0)] + [labelled] * repeats)
    net = train_convnet(images[rows], torch.as_tensor(named[rows], dtype=torch.int64), epochs=epochs,
                        batch_size=BATCH_SIZE, lr=LR, seed=seed, precision=precision, device=device, classes=classes,
                        augmented=True, network=network)
    return net.predict(images)[0].numpy()

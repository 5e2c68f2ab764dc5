"""Self-labelling on real digits whose classes are known: it learns the classes through labels that are partly
wrong, and the augmentation it trains with moves digits a little, seeded."""

import numpy as np
import torch

from vaepipe.classifiers.convnet import augment
from vaepipe.data.datasets import load_split
from vaepipe.latent.self_labelling import self_label


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
    refined = self_label(images, clusters, 5, epochs=3, seed=0, precision="fp32", device=torch.device("cpu"))
    assert np.mean(refined == ids[labels]) > 0.95
    # Seeded: the same CNN again, checked on a shorter run.
    once, again = (self_label(images[:500], clusters[:500], 5, epochs=1, seed=0, precision="fp32",
                              device=torch.device("cpu")) for _ in range(2))
    np.testing.assert_array_equal(once, again)
    # Trained on a seeded fifth of them, it still predicts every image, and mostly right.
    quick = self_label(images, clusters, 5, epochs=3, seed=0, precision="fp32", device=torch.device("cpu"), subset=400)
    assert len(quick) == len(images) and np.mean(quick == ids[labels]) > 0.85


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

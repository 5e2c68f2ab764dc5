import os
import shutil
import sys

import numpy as np
import pytest
import torch

import vaepipe.vae.codes
from conftest import run_stage_script
from vaepipe.data.datasets import load_split
from vaepipe.latent.downstream import (balanced_draw, chosen_on_validation, fit_and_score, label_efficiency,
                                       spreading_scores)
from vaepipe.latent.embedding import embed_2d, interpolate, manifold_grid, umap_embedding



def test_interpolation_starts_and_ends_at_the_endpoints():
    a, b = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, -2.0], [1.0, 3.0]])
    path = interpolate(a, b, steps=5).view(2, 5, 2)
    assert torch.equal(path[:, 0], a) and torch.equal(path[:, -1], b)
    assert torch.allclose(path[0, 2], torch.tensor([1.0, -1.0]))


def test_manifold_grid_covers_prior_quantiles_symmetrically():
    grid = manifold_grid(4)
    assert grid.shape == (16, 2)
    xs = grid[:4, 0]
    assert torch.allclose(xs, -xs.flip(0), atol=1e-6)
    assert torch.all(xs[1:] > xs[:-1])  # left to right increasing
    assert grid[0, 1] > grid[-1, 1]  # top row has the largest second coordinate


def test_embed_2d_keeps_2d_codes_and_reduces_others():
    codes = np.random.default_rng(0).normal(size=(200, 6))
    assert embed_2d(codes[:, :2], "pca", 0) is not None and np.array_equal(embed_2d(codes[:, :2], "pca", 0), codes[:, :2])
    assert embed_2d(codes, "pca", 0).shape == (200, 2)
    assert embed_2d(codes[:60], "tsne", 0).shape == (60, 2)


def test_umap_leaves_torch_with_the_threads_it_had():
    """UMAP hands numba its thread count back, and numba's OpenMP layer is torch's: OMP_NUM_THREADS must still hold
    for the torch work after it."""
    kept = torch.get_num_threads()
    asked = os.cpu_count() + 1  # more than numba ever has
    torch.set_num_threads(asked)
    try:
        umap_embedding(np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32), 2, 10, seed=0, n_epochs=5)
        assert torch.get_num_threads() == asked
    finally:
        torch.set_num_threads(kept)


def test_balanced_draw_has_equal_class_counts():
    labels = np.repeat(np.arange(10), 50)
    idx = balanced_draw(labels, 100, np.random.default_rng(0))
    assert len(idx) == len(set(idx)) == 100
    assert np.bincount(labels[idx]).tolist() == [10] * 10
    odd = balanced_draw(labels, 13, np.random.default_rng(0))
    assert sorted(np.bincount(labels[odd], minlength=10).tolist()) == [1] * 7 + [2] * 3


def separable(n, rng):
    y = rng.integers(0, 3, size=n)
    centres = np.array([[0, 0], [6, 0], [0, 6]])
    return centres[y] + rng.normal(size=(n, 2)), y


def test_probes_separate_separable_codes_and_fail_on_noise():
    rng = np.random.default_rng(0)
    (train_x, train_y), (test_x, test_y) = separable(600, rng), separable(300, rng)
    scores = fit_and_score(train_x, train_y, {"test": (test_x, test_y)}, knn_neighbors=5, seed=0)
    assert set(scores) == {"logreg", "knn"}
    assert all(per_set["test"][0] > 0.97 for per_set in scores.values())
    noise = fit_and_score(rng.normal(size=(600, 2)), train_y, {"test": (rng.normal(size=(300, 2)), test_y)}, 5, 0)
    assert all(per_set["test"][0] < 0.5 for per_set in noise.values())


def test_label_efficiency_is_seeded():
    rng = np.random.default_rng(1)
    (train_x, train_y), (test_x, test_y) = separable(600, rng), separable(300, rng)
    sets = {"val": (train_x[:100], train_y[:100]), "test": (test_x, test_y)}
    clusters = {"train_clusters": train_y, "eval_clusters": {"val": train_y[:100], "test": test_y}}
    a = label_efficiency(train_x, train_y, sets, budget=9, draws=3, knn_neighbors=5, unlabelled=200, seed=7, **clusters)
    b = label_efficiency(train_x, train_y, sets, budget=9, draws=3, knn_neighbors=5, unlabelled=200, seed=7, **clusters)
    assert a == b and 0.5 < a["logreg"]["test"] <= 1.0 and set(a["knn"]) == {"val", "test"}
    assert set(a) == {"logreg", "knn", "spread", "cluster"} and a["spread"]["test"] > 0.9
    assert a["cluster"] == {"val": 1.0, "test": 1.0}  # clusters that are the classes, named by 9 labels


def test_label_spreading_uses_the_unlabelled_codes():
    """Two concentric rings, one label on each, both at angle 0. The far side of the outer ring is nearer the
    inner ring's label than its own, so a 1-NN probe of the two labels gets it wrong; spreading through the
    unlabelled codes follows the ring."""
    rng = np.random.default_rng(0)
    ring = rng.integers(0, 2, size=600)
    angle = rng.uniform(0, 2 * np.pi, size=600)
    angle[:2], ring[:2] = 0.0, [0, 1]  # the two labelled codes
    radius = np.where(ring == 0, 1.0, 3.0)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + rng.normal(scale=0.02, size=(600, 2))
    labelled, pool = np.array([0, 1]), np.arange(2, 400)
    held_out = {"test": (x[400:], ring[400:])}
    spread = spreading_scores(x, ring, labelled, pool, held_out)["test"]
    one_nn = fit_and_score(x[labelled], ring[labelled], held_out, knn_neighbors=1, seed=0)["knn"]["test"][0]
    assert spread > 0.95 and one_nn < 0.85


def test_shuffled_test_labels_change_no_choice():
    """The choice reads validation accuracies only: with the test labels shuffled, the same probes win."""
    rng = np.random.default_rng(2)
    (train_x, train_y), (test_x, test_y) = separable(600, rng), separable(300, rng)
    val = (train_x[:100], train_y[:100])
    # Clusters from a labelling of the codes that ignores the classes half the time: an imperfect clustering.
    clusters = np.where(rng.random(900) < 0.5, np.concatenate([train_y, test_y]), rng.integers(0, 3, 900))
    kwargs = dict(budget=9, draws=2, knn_neighbors=5, unlabelled=200, seed=3, train_clusters=clusters[:600],
                  eval_clusters={"val": clusters[:100], "test": clusters[600:]})
    real = label_efficiency(train_x, train_y, {"val": val, "test": (test_x, test_y)}, **kwargs)
    shuffled = label_efficiency(train_x, train_y, {"val": val, "test": (test_x, rng.permutation(test_y))}, **kwargs)
    assert chosen_on_validation(real)[0] == chosen_on_validation(shuffled)[0]
    assert {p: r["val"] for p, r in real.items()} == {p: r["val"] for p, r in shuffled.items()}
    assert real != shuffled  # the test numbers did change


def test_the_probe_is_chosen_on_validation_and_only_scored_on_test():
    accuracies = {"logreg": {"val": 0.91, "test": 0.80}, "knn": {"val": 0.90, "test": 0.95}}
    chosen, metrics = chosen_on_validation(accuracies, "_100_labels")
    assert chosen == "logreg" and metrics["accuracy_100_labels"] == 0.80  # not the better test number
    assert metrics["probe_100_labels"] == "logreg"
    assert metrics["knn_accuracy_100_labels"] == 0.95 and metrics["knn_val_accuracy_100_labels"] == 0.90


@pytest.mark.parametrize("stage", ["generate", "downstream"])
def test_codes_are_those_of_the_grey_images(stage, tiny_run, tmp_path, monkeypatch):
    """The representation is of the digit, not of one binarisation of it (see posterior_means); the tiny run
    trains with `train.binarize: dynamic`."""
    shutil.copytree(tiny_run, tmp_path / "repo", copy_function=os.link)
    monkeypatch.chdir(tmp_path / "repo")
    encode, seen = vaepipe.vae.codes.posterior_means, []

    def recording_encode(model, x):
        seen.append(x)
        return encode(model, x)
    monkeypatch.setattr(vaepipe.vae.codes, "posterior_means", recording_encode)
    run_stage_script(stage)
    grey = {split: load_split("data/raw", split)[0] for split in ("train", "test")}
    assert seen and all(any(torch.equal(x, images) for images in grey.values()) for x in seen)


def test_every_umap_numba_function_caches_its_compile():
    """UMAP leaves most of its numba functions uncached (12 s of compiling per process); umap_embedding caches them."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    embedding = vaepipe.latent.embedding.umap_embedding(np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32), 2, 5, seed=0,
                               n_epochs=5)
    assert embedding.shape == (60, 2)
    uncached = [f"{name}.{attr}" for name, module in list(sys.modules.items()) if name.split(".")[0] == "umap"
                for attr, value in vars(module).items()
                if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache)]
    assert not uncached

"""The Fréchet distance, the judge's other sample scores, and the samplers that draw latent codes."""

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from vaepipe.generation.sample_quality import class_entropy_bits, frechet_distance, judged
from vaepipe.latent.samplers import CodeMixture, draw_codes
from vaepipe.vae.model import VAE, VAEConfig


def test_frechet_distance_of_identical_feature_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 16)) @ np.random.default_rng(1).normal(size=(16, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-9 * np.trace(np.cov(features.T)))
    assert frechet_distance(features, features + 3.0) == pytest.approx(16 * 9.0)  # only the means differ


def test_frechet_distance_in_one_dimension_by_hand():
    # a: mean 1, variance 2; b: mean 3, variance 4 (sample variances, n - 1).
    # (1 - 3)^2 + 2 + 4 - 2 sqrt(2 * 4) = 10 - 4 sqrt(2)
    a, b = np.array([[0.0], [2.0]]), np.array([[1.0], [3.0], [5.0]])
    assert frechet_distance(a, b) == pytest.approx(10 - 4 * math.sqrt(2), rel=1e-12)
    assert frechet_distance(b, a) == pytest.approx(10 - 4 * math.sqrt(2), rel=1e-12)


def test_frechet_distance_matches_the_usual_sqrtm_formula():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(3000, 8)) @ rng.normal(size=(8, 8)) + rng.normal(size=8)
    cov_a, cov_b = np.cov(a.T), np.cov(b.T)
    usual = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
             - 2 * np.trace(linalg.sqrtm(cov_a @ cov_b).real))
    assert frechet_distance(a, b) == pytest.approx(usual, rel=1e-8)


def test_frechet_distance_stays_finite_with_fewer_images_than_features():
    rng = np.random.default_rng(3)
    distance = frechet_distance(rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 1.0)
    assert math.isfinite(distance) and distance > 64  # the means alone are sqrt(64) apart


def test_class_entropy_and_confidence():
    assert class_entropy_bits(torch.arange(10).repeat(7)) == pytest.approx(math.log2(10))
    assert class_entropy_bits(torch.full((50,), 3)) == 0.0
    assert class_entropy_bits(torch.tensor([0, 1])) == pytest.approx(1.0)
    probs = torch.tensor([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9], [0.2, 0.8]])
    features = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    scores = judged(probs, features, features, confidence=0.9)
    assert scores == {"frechet": pytest.approx(0.0, abs=1e-12), "confident": 0.5,
                      "class_entropy_bits": pytest.approx(1.0)}


def test_code_mixture_samples_where_the_codes_are():
    rng = np.random.default_rng(4)
    codes = np.concatenate([rng.normal([-5, 0], 0.5, size=(3000, 2)), rng.normal([5, 2], [1.0, 0.2], size=(1000, 2))])
    mixture = CodeMixture(codes, n_components=2, seed=0)
    samples = mixture.sample(40000, torch.Generator().manual_seed(0)).numpy()
    right = samples[:, 0] > 0
    assert right.mean() == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(samples[right].mean(0), [5, 2], atol=0.03)
    np.testing.assert_allclose(samples[right].std(0), [1.0, 0.2], rtol=0.03)
    np.testing.assert_allclose(samples[~right].std(0), [0.5, 0.5], rtol=0.03)
    again = mixture.sample(40000, torch.Generator().manual_seed(0)).numpy()
    assert np.array_equal(samples, again)  # seeded: the same generator state gives the same codes


def test_draw_codes_from_the_prior_is_the_models_own_prior():
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(8,), prior="mog", prior_components=4))
    drawn = draw_codes("prior", model, 5, torch.Generator().manual_seed(1), None)
    assert torch.equal(drawn, model.prior.sample(5, torch.Generator().manual_seed(1)))

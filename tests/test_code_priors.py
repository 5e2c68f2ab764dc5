"""The `learned` sampler's densities over codes (vaepipe.latent.samplers, code_diffusion, code_flow): each recovers
a known 2-D mixture, its sampling is seeded, and a round trip through the VAE is the code of the decoded image."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from vaepipe.core.params import CodePriorParams
from vaepipe.latent.samplers import draw_codes, fit_code_prior, round_trip
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import VAE, VAEConfig

# Three Gaussians in 2-D, one of them long and thin like the codes of one digit.
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]])
COVARIANCES = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.3], [0.3, 0.4]], [[2.0, 0.0], [0.0, 0.05]]])
SMALL = CodePriorParams(kind="mixture", components=3, em_iterations=100, temperature=1.0, hidden=64, blocks=3, steps=1500, batch_size=256, lr=0.003,
                        sample_steps=50, round_trips=0)


def true_mixture() -> GaussianMixture:
    truth = GaussianMixture(3, covariance_type="full")
    truth.weights_, truth.means_, truth.covariances_ = WEIGHTS, MEANS, COVARIANCES
    truth.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(COVARIANCES))
    return truth


def draw(n: int, seed: int) -> torch.Tensor:
    truth = true_mixture()
    truth.random_state = seed
    return torch.from_numpy(truth.sample(n)[0]).float()


# Enough training for each to come within 0.05 nats of the truth (measured: diffusion 0.04, flow 0.05), in 15 s.
FITTING = {"mixture": {}, "diffusion": {"steps": 3000, "sample_steps": 100}, "flow": {"steps": 3000, "blocks": 8}}


@pytest.mark.parametrize("kind", FITTING)
def test_each_kind_recovers_a_known_2d_mixture(kind):
    train, held_out = draw(6000, 0), draw(4000, 1).double().numpy()
    prior = fit_code_prior(train, dataclasses.replace(SMALL, kind=kind, **FITTING[kind]), seed=0)
    truth = true_mixture().score(held_out)  # the held-out log-likelihood under the true density, about -3.2 nats
    if kind == "diffusion":
        # No exact density: a mixture with the true number of parts fitted to its samples stands for it.
        samples = prior.sample(20000, torch.Generator().manual_seed(2)).double().numpy()
        learned = GaussianMixture(3, covariance_type="full", random_state=0).fit(samples).score(held_out)
    else:
        learned = prior.log_prob(torch.from_numpy(held_out).float()).mean().item()
    assert learned == pytest.approx(truth, abs=0.08), (learned, truth)
    # A tolerance that tells densities apart: N(0, I) scores these points 4.7 nats below the truth.
    assert truth - (-0.5 * (held_out ** 2).sum(1) - math.log(2 * math.pi)).mean() > 4


@pytest.mark.parametrize("kind", ["mixture", "diffusion", "flow"])
def test_seeded_fit_and_sampling_reproduce(kind):
    settings = dataclasses.replace(SMALL, kind=kind, steps=50)
    codes = draw(1000, 0)
    first = fit_code_prior(codes, settings, seed=3).sample(100, torch.Generator().manual_seed(4))
    again = fit_code_prior(codes, settings, seed=3).sample(100, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    other = fit_code_prior(codes, settings, seed=3).sample(100, torch.Generator().manual_seed(5))
    assert not torch.equal(first, other)


def test_a_round_trip_replaces_a_code_by_the_code_of_its_decoded_image():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(16,)))
    codes = torch.randn(5, 3)
    assert torch.equal(round_trip(model, codes, 0), codes)
    once = posterior_means(model, decode_probs(model, codes))
    assert torch.equal(round_trip(model, codes, 1), once)
    assert torch.equal(round_trip(model, codes, 2), posterior_means(model, decode_probs(model, once)))


def test_only_the_learned_sampler_makes_round_trips():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=2, hidden=(16,)))
    mixture = fit_code_prior(draw(500, 0), SMALL, seed=0)
    fitted = {"gmm": mixture, "learned": mixture}
    gmm = draw_codes("gmm", model, 10, torch.Generator().manual_seed(1), fitted, round_trips=2)
    learned = draw_codes("learned", model, 10, torch.Generator().manual_seed(1), fitted, round_trips=2)
    assert torch.equal(gmm, mixture.sample(10, torch.Generator().manual_seed(1)))
    assert torch.equal(learned, round_trip(model, gmm, 2))


@pytest.mark.parametrize("kind", ["mixture", "diffusion", "flow"])
def test_temperature_narrows_the_draws(kind):
    codes = draw(2000, 0)
    settings = dataclasses.replace(SMALL, kind=kind, components=1, steps=300)
    spread = {t: fit_code_prior(codes, dataclasses.replace(settings, temperature=t), seed=0)
              .sample(5000, torch.Generator().manual_seed(1)).std(0) for t in (1.0, 0.5)}
    if kind == "mixture":  # one Gaussian: every coordinate's spread exactly halves
        torch.testing.assert_close(spread[0.5], spread[1.0] / 2, rtol=1e-5, atol=1e-6)
    assert spread[0.5].pow(2).sum() < 0.7 * spread[1.0].pow(2).sum(), spread  # the networks bend the noise

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaepipe.vae.evaluation import active_units, likelihood_bounds
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.objectives import bernoulli_nll, gaussian_kl, nats_to_bits_per_dim, negative_bound


def test_kl_is_zero_at_prior_and_positive_elsewhere():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    assert (gaussian_kl(mu, logvar) > 0).all()
    assert gaussian_kl(torch.zeros(3, 8), torch.zeros(3, 8)).abs().max() < 1e-6


def test_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 6, generator=gen), torch.randn(50, 6, generator=gen)
    posterior = Normal(mu, torch.exp(0.5 * logvar))
    reference = kl_divergence(posterior, Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar), reference, rtol=1e-5, atol=1e-5)


def test_kl_closed_form_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.2, -0.7, 0.0]])
    posterior = Normal(mu, torch.exp(0.5 * logvar))
    z = mu + torch.randn(400_000, 3, generator=gen) * posterior.scale
    monte_carlo = (posterior.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    assert monte_carlo.item() == pytest.approx(gaussian_kl(mu, logvar).item(), rel=0.01)


def test_bernoulli_nll_matches_explicit_formula():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    x = torch.tensor([[1.0, 0.0, 1.0]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert bernoulli_nll(logits, x).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bernoulli_nll_matches_torch_distributions_even_for_large_logits():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 784, generator=gen) * 30  # saturated sigmoids, where a naive log(p) underflows
    x = torch.rand(64, 784, generator=gen).round()
    reference = -Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(bernoulli_nll(logits, x), reference, rtol=1e-5)


def test_the_negative_elbo_weights_kl_by_beta():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(8,)))
    gen = torch.Generator().manual_seed(0)
    x, noise = torch.rand(4, 784, generator=gen).round(), torch.randn(4, 3, generator=gen)
    mu, logvar = model.encode(x)
    posterior = Normal(mu, torch.exp(0.5 * logvar))
    recon = -Bernoulli(logits=model.decode(mu + noise * posterior.scale)).log_prob(x).sum(-1).mean()
    kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(-1).mean()
    for beta in (1.0, 4.0):
        loss, loss_recon, loss_kl = negative_bound(model, x, noise.unsqueeze(0), beta, "elbo")
        assert (loss_recon.item(), loss_kl.item()) == pytest.approx((recon.item(), kl.item()), rel=1e-5)
        assert loss.item() == pytest.approx((recon + beta * kl).item(), rel=1e-5)


def test_bits_per_dim():
    assert nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)


def tiny_model(latent_dim: int, pixels: int = 16, seed: int = 0, prior: str = "normal") -> VAE:
    """An untrained model whose decoder is sharp in z, so that q(z|x) is far from the true posterior."""
    torch.manual_seed(seed)
    model = VAE(VAEConfig(arch="mlp", latent_dim=latent_dim, hidden=(8,), input_dim=pixels, prior=prior,
                          prior_components=0 if prior == "normal" else 3))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model


def binary_images(n: int, pixels: int = 16) -> torch.Tensor:
    return torch.rand(n, pixels, generator=torch.Generator().manual_seed(1)).round()


def exact_nll_1d(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """-log p(x) by numerical integration over a fine grid, possible when z is 1-D."""
    z = torch.linspace(-10, 10, 40001).unsqueeze(1)
    dz = (z[1] - z[0]).item()
    with torch.no_grad():
        logits = model.decode(z)
        log_pz = model.prior.log_prob(z)  # checked against torch.distributions in test_model_family.py
    shape = (len(x), len(z), x.shape[1])
    log_joint = -bernoulli_nll(logits.expand(shape), x.unsqueeze(1).expand(shape)) + log_pz
    return -(torch.logsumexp(log_joint, dim=1) + math.log(dz))


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_importance_sampling_converges_to_exact_likelihood_and_beats_elbo(prior):
    model, x = tiny_model(latent_dim=1, prior=prior), binary_images(6)
    exact = exact_nll_1d(model, x)
    gen = torch.Generator().manual_seed(2)
    bounds = likelihood_bounds(model, x, k=5000, gen=gen)
    # The ELBO is a looser bound than the k-sample estimate, which is close to the truth.
    assert (bounds.neg_elbo >= bounds.nll).all()
    assert (bounds.neg_elbo - exact > 1.0).all()
    assert torch.allclose(bounds.nll, exact, atol=0.1)


def test_importance_bound_tightens_with_k():
    model, x = tiny_model(latent_dim=4), binary_images(200)
    nll = [likelihood_bounds(model, x, k=k, gen=torch.Generator().manual_seed(3)).nll.mean().item()
           for k in (1, 10, 100)]
    assert nll[0] > nll[1] > nll[2]


def test_single_sample_bound_equals_monte_carlo_elbo():
    """With k = 1 the estimator is log p(x|z) + log p(z) - log q(z|x) for one z: the MC ELBO."""
    model, x = tiny_model(latent_dim=3), binary_images(50)
    gen = torch.Generator().manual_seed(4)
    bounds = likelihood_bounds(model, x, k=1, gen=gen)
    mu, logvar = model.encode(x)
    eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(4))[0]
    z = mu + eps * torch.exp(0.5 * logvar)
    posterior, prior = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    expected = bernoulli_nll(model.decode(z), x) - prior.log_prob(z).sum(-1) + posterior.log_prob(z).sum(-1)
    assert torch.allclose(bounds.nll, expected.detach(), atol=1e-4)


def test_chunking_bounds_memory_but_not_the_estimate():
    model, x = tiny_model(latent_dim=1), binary_images(6)
    # Room for 7 images' logits at a time: one image and a few samples per chunk, many running logsumexps.
    chunked = likelihood_bounds(model, x, k=5000, gen=torch.Generator().manual_seed(6), max_logits=16 * 7)
    assert torch.allclose(chunked.nll, exact_nll_1d(model, x), atol=0.1)


def test_a_wider_proposal_converges_to_the_exact_likelihood():
    model, x = tiny_model(latent_dim=1), binary_images(6)
    wide = likelihood_bounds(model, x, k=5000, gen=torch.Generator().manual_seed(7), proposal_scale=1.5)
    assert torch.allclose(wide.nll, exact_nll_1d(model, x), atol=0.1)


def test_the_elbo_beside_a_wider_proposal_is_the_elbo_of_q():
    """Its terms come from draws of q itself: the exact KL, and the reconstruction q's draws give (averaged over
    images here), not the one of the wider proposal's draws (22.3 nats against 15.3 on this model)."""
    model, x = tiny_model(latent_dim=1), binary_images(400)
    wide = likelihood_bounds(model, x, k=64, gen=torch.Generator().manual_seed(7), proposal_scale=2.0)
    of_q = likelihood_bounds(model, x, k=2000, gen=torch.Generator().manual_seed(7))
    assert torch.equal(wide.kl, of_q.kl)
    assert wide.recon.mean().item() == pytest.approx(of_q.recon.mean().item(), rel=0.03)


def test_single_sample_bound_with_a_wider_proposal_weighs_by_its_density():
    model, x = tiny_model(latent_dim=3), binary_images(50)
    bounds = likelihood_bounds(model, x, k=1, gen=torch.Generator().manual_seed(4), proposal_scale=2.0)
    mu, logvar = model.encode(x)
    eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(4))[0]
    proposal = Normal(mu, 2.0 * torch.exp(0.5 * logvar))
    z = mu + eps * proposal.scale
    expected = bernoulli_nll(model.decode(z), x) - Normal(0.0, 1.0).log_prob(z).sum(-1) + proposal.log_prob(z).sum(-1)
    assert torch.allclose(bounds.nll, expected.detach(), atol=1e-4)


def test_active_units_counts_dimensions_that_vary():
    mu = torch.zeros(1000, 5)
    mu[:, 1] = torch.linspace(-1, 1, 1000)
    mu[:, 3] = torch.linspace(0, 0.01, 1000)  # variance ~1e-5: inactive
    assert active_units(mu) == 1

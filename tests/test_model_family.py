"""The model family: architectures, priors and objectives behind one interface, the autograd training
path against the hand-written gradient, and keeping the best epoch."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from conftest import REPO_ROOT, TINY, every_stage_run
from vaepipe.core.artifacts import save_weights
from vaepipe.core.params import load_params
from vaepipe.data.datasets import load_split
from vaepipe.vae import training
from vaepipe.vae.model import VAE, VAEConfig, load_model
from vaepipe.vae.objectives import negative_bound
from vaepipe.vae.training import EpochStats, Trainer, split_train_val, train, uses_hand_written_gradient

DEFAULT_TRAIN = load_params(REPO_ROOT / "params.yaml").train


def model_of(arch="mlp", prior="normal", latent_dim=6, hidden=(32,), components=5, seed=0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(arch=arch, latent_dim=latent_dim, hidden=hidden, prior=prior,
                         prior_components=0 if prior == "normal" else components))


def train_params(**changes):
    return dataclasses.replace(DEFAULT_TRAIN, **{"epochs": 2, "lr_schedule": "constant", "kl_warmup": 0.0,
                                                 **changes})


@pytest.fixture(scope="module")
def digits(mnist_raw) -> torch.Tensor:
    return load_split(mnist_raw, "train")[0][:640]


def test_the_fast_path_is_used_exactly_where_it_applies():
    assert uses_hand_written_gradient(DEFAULT_TRAIN)
    for changes in ({"arch": "conv", "hidden": (8,)}, {"prior": "mog"}, {"prior": "vamp"},
                    {"objective": "iwae", "samples": 2}, {"samples": 3}):
        assert not uses_hand_written_gradient(dataclasses.replace(DEFAULT_TRAIN, **changes)), changes


def test_autograd_and_hand_written_paths_give_the_same_parameters(digits):
    """Parity: five steps of Adam (with the KL warm-up and dynamic binarisation) from the same start."""
    params = train_params(epochs=1, kl_warmup=0.5, batch_size=128, precision="fp32")
    start = model_of(latent_dim=8, hidden=(64, 32))
    results = []
    for hand_written in (True, False):
        model = copy.deepcopy(start)
        trainer = Trainer(model, digits, params, seed=3, hand_written=hand_written)
        assert (trainer.elbo_gradient is not None) == hand_written
        stats = trainer.run_epoch()
        results.append((stats, torch.cat([p.detach().reshape(-1) for p in model.parameters()])))
    (fast_stats, fast), (auto_stats, auto) = results
    moved = (fast - torch.cat([p.detach().reshape(-1) for p in start.parameters()])).abs().max()
    assert moved > 5e-3  # five Adam steps of lr 2e-3 moved the weights
    # Adam divides by the root of the squared gradients, so float-rounding differences in a near-zero
    # gradient move a weight by up to a few 1e-5 (measured 1.3e-5); a wrong gradient moves it by ~lr.
    torch.testing.assert_close(auto, fast, rtol=1e-4, atol=1e-4)
    assert math.isclose(auto_stats.neg_elbo, fast_stats.neg_elbo, rel_tol=1e-5)


@pytest.mark.parametrize("arch, prior, objective", [("mlp", "normal", "elbo"), ("conv", "normal", "elbo"),
                                                    ("mlp", "mog", "elbo"), ("mlp", "vamp", "iwae")])
def test_the_autograd_step_in_bf16_agrees_with_float32(digits, arch, prior, objective):
    """The autograd path under bf16 autocast: layers in bf16 on float32 weights, the bound summed in float32.
    Stated tolerance as for the hand-written path: the loss within 0.5 %, each gradient within 5 % of its norm
    (seen: at most 0.001 % and 3.2 %, the conv model's)."""
    model = model_of(arch=arch, prior=prior, hidden=(8, 16) if arch == "conv" else (64,))
    x = digits[:64].bernoulli(generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 64, 6, generator=torch.Generator().manual_seed(1))
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        model.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss, _, _ = negative_bound(model, x, noise, 1.0, objective)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss32, grads32), (loss16, grads16) = results
    assert loss16.dtype == torch.float32 and loss16 != loss32
    assert math.isclose(loss16, loss32, rel_tol=5e-3)
    for (name, _), g32, g16 in zip(model.named_parameters(), grads32, grads16):
        assert (g16 - g32).norm() <= 0.05 * g32.norm(), name


def reference_prior(model: VAE):
    """The model's prior built from torch.distributions, independently of VAE.prior_log_prob."""
    if model.config.prior == "normal":
        dim = model.config.latent_dim
        return Independent(Normal(torch.zeros(dim), torch.ones(dim)), 1)
    if model.config.prior == "mog":
        weights, means, logvars = model.prior.logits, model.prior.means, model.prior.logvars
    else:
        means, logvars = model.encode(model.prior.pseudo_inputs.clamp(0, 1))
        weights = torch.zeros(len(means))
    return MixtureSameFamily(Categorical(logits=weights), Independent(Normal(means, (0.5 * logvars).exp()), 1))


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_prior_log_prob_is_the_exact_density(prior):
    model = model_of(prior=prior)
    with torch.no_grad():
        if prior == "mog":  # unequal weights and widths, so a uniform or unit-variance bug shows
            model.prior.logits.copy_(torch.linspace(-2, 2, 5))
            model.prior.logvars.copy_(torch.linspace(-1, 1, 30).view(5, 6))
        if prior == "vamp":
            model.prior.pseudo_inputs.uniform_(-0.5, 1.5)  # some outside [0, 1]: the hard tanh must clip them
        z = 2 * torch.randn(3, 7, 6)
        torch.testing.assert_close(model.prior.log_prob(z), reference_prior(model).log_prob(z), rtol=1e-5, atol=1e-4)


def test_the_normal_prior_samples_as_the_generate_stage_always_has():
    model = model_of()
    assert torch.equal(model.prior.sample(7, torch.Generator().manual_seed(5)),
                       torch.randn(7, 6, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_prior_samples_follow_the_prior(prior):
    model = model_of(prior=prior, latent_dim=2, components=3)
    with torch.no_grad():
        if prior == "mog":
            model.prior.means.copy_(torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]]))
            model.prior.logvars.fill_(math.log(0.25))
            model.prior.logits.copy_(torch.tensor([0.2, 0.3, 0.5]).log())
    samples = model.prior.sample(40000, torch.Generator().manual_seed(0))
    reference = reference_prior(model)
    torch.testing.assert_close(samples.mean(0), reference.mean.detach(), atol=0.05, rtol=0.02)
    torch.testing.assert_close(samples.var(0), reference.variance.detach(), atol=0.05, rtol=0.03)
    if prior == "mog":  # each component's share
        shares = torch.bincount(torch.cdist(samples, model.prior.means.detach()).argmin(1)) / len(samples)
        torch.testing.assert_close(shares, torch.tensor([0.2, 0.3, 0.5]), atol=0.01, rtol=0)


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_the_iwae_bound_is_tighter_than_the_elbo_for_the_same_samples(prior):
    model, x = model_of(prior=prior), torch.rand(20, 784).round()
    noise = torch.randn(8, 20, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        iwae = negative_bound(model, x, noise, 1.0, "iwae")[0]
        # The Monte Carlo ELBO of the same 8 samples (the closed-form KL would use other randomness).
        mu, logvar = model.encode(x)
        z = mu + noise * (0.5 * logvar).exp()
        log_q = Independent(Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z)
        log_px = torch.distributions.Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1)
        mc_elbo = -(log_px + reference_prior(model).log_prob(z) - log_q).mean()
    assert iwae < mc_elbo - 1.0  # Jensen's gap of an untrained model is large
    if prior != "normal":  # one sample: the IWAE bound is that sample's ELBO; the -ELBO then uses the same estimate
        with torch.no_grad():
            one = noise[:1]
            torch.testing.assert_close(negative_bound(model, x, one, 1.0, "iwae")[0],
                                       negative_bound(model, x, one, 1.0, "elbo")[0])


@pytest.mark.parametrize("arch, prior", [("mlp", "normal"), ("mlp", "mog"), ("conv", "normal"), ("conv", "vamp")])
def test_every_model_saves_and_rebuilds_from_its_file(tmp_path, arch, prior):
    model = model_of(arch=arch, prior=prior, hidden=(8, 16) if arch == "conv" else (32,))
    x, z = torch.rand(4, 784), torch.randn(3, 4, 6)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 6) and model.decode(z).shape == (3, 4, 784)
    save_weights(tmp_path / "m.safetensors", model.state_dict(), model.config.to_dict())
    loaded = load_model(str(tmp_path / "m.safetensors"), torch.device("cpu"))
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), model.decode(z))
        assert torch.equal(loaded.prior.log_prob(z), model.prior.log_prob(z))


def test_conv_needs_one_or_two_layers():
    with pytest.raises(ValueError, match="a conv model has 1 or 2 layers, not 3"):
        model_of(arch="conv", hidden=(4, 8, 16))


@pytest.mark.parametrize("changes", [{"arch": "conv", "hidden": (8, 16)}, {"prior": "mog", "prior_components": 10},
                                     {"prior": "vamp", "prior_components": 10}, {"objective": "iwae", "samples": 4}])
def test_every_choice_learns_on_real_digits(digits, changes):
    params = train_params(**changes, epochs=3, batch_size=64, lr=2e-3)
    model = VAE(VAEConfig.from_params(8, params))
    train_x, val_x = split_train_val(digits, 128, seed=0)
    val_x = val_x.bernoulli(generator=torch.Generator().manual_seed(0))
    untrained = training.validation_stats(model, val_x, 1.0, 0).neg_elbo
    history = []
    train(model, train_x, val_x, params, 0, lambda epoch, t, v: history.append(v.neg_elbo))
    # Measured: 545-564 nats untrained; 204-323 after three epochs on 512 digits (conv learns slowest).
    assert untrained > 500 and history[-1] < untrained - 200, (untrained, history)


def scripted_validation(monkeypatch, values):
    """validation_stats returns these -ELBOs, one per epoch; the weights after each epoch are recorded."""
    calls, weights = iter(values), []

    def fake(model, val_x, beta, seed, val_labels):
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone())
        value = next(calls)
        return EpochStats(value, value, 0.0)
    monkeypatch.setattr(training, "validation_stats", fake)
    return weights


@pytest.mark.parametrize("keep, patience, expected_epoch, epochs_run", [
    ("best", 0, 2, 6), ("best", 2, 2, 4), ("last", 0, 6, 6), ("last", 3, 5, 5)])
def test_the_best_epoch_is_kept_and_patience_stops(monkeypatch, keep, patience, expected_epoch, epochs_run):
    weights = scripted_validation(monkeypatch, [100.0, 90.0, 95.0, 96.0, 91.0, 97.0])
    params = train_params(epochs=6, keep=keep, patience=patience, batch_size=32)
    model = model_of(hidden=(16,))
    epochs = []
    kept = train(model, torch.rand(64, 784), torch.rand(8, 784).round(), params, 0, lambda e, t, v: epochs.append(e))
    assert epochs == list(range(1, epochs_run + 1)) and kept == expected_epoch
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), weights[expected_epoch - 1])


# Between them, every new choice: conv, vamp, mog, iwae, patience (the default run covers mlp, normal, elbo). The
# first is compiled, as the tiny run is, so the compiled bounds also run with a conv encoder, a VampPrior and IWAE; the
# second runs eagerly, as a run this small does by default (compiling would cost it 45 s more).
VARIANTS = {
    "conv-vamp-iwae": {"train.arch": "conv", "train.hidden": [8, 16], "train.prior": "vamp",
                       "train.prior_components": 20, "train.objective": "iwae", "train.samples": 3},
    "mog-patience": {"train.prior": "mog", "train.prior_components": 10, "train.epochs": 3, "train.patience": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_stage_trains_and_loads_each_model_choice(tmp_path_factory, mnist_raw, fashion_raw, variant):
    """The stage scripts, in order, with tiny params and this model: each rebuilds it from the model file."""
    changes = VARIANTS[variant]
    root = every_stage_run(tmp_path_factory, mnist_raw, fashion_raw, variant, changes,
                           compiled=variant == "conv-vamp-iwae")
    config = load_model(str(root / "models/vae.safetensors"), torch.device("cpu")).config
    assert (config.arch, config.prior) == (changes.get("train.arch", "mlp"), changes["train.prior"])
    assert config.prior_components == changes["train.prior_components"]
    metrics = {name: json.loads((root / f"metrics/{name}.json").read_text())
               for name in ("evaluate", "train/metrics", "cluster", "downstream", "compress", "anomaly")}
    evaluate = metrics["evaluate"]
    # Learned, if little (one epoch on 500 digits; measured 481-513 nats): below a uniform Bernoulli's 543.4 nats
    # and an untrained model's 545-564. With a learned prior the KL is averaged over the same samples, so the IS
    # bound is below it image by image.
    assert 100 < evaluate["test_nll"] <= evaluate["test_neg_elbo"] < 530
    # The kept epoch is the one of lowest validation -ELBO (train.keep: best); patience stops after one worse.
    curve = [float(line.split("\t")[1]) for line in
             (root / "metrics/train/plots/metrics/val/neg_elbo.tsv").read_text().splitlines()[1:]]
    kept = 1 + curve.index(min(curve))
    assert metrics["train/metrics"]["kept_epoch"] == kept
    epochs, patience = changes.get("train.epochs", TINY["train.epochs"]), changes.get("train.patience", 0)
    assert len(curve) == epochs or (patience and len(curve) - kept == patience), curve
    # Every stage downstream used this model's codes and likelihood (measured: clusters 0.21-0.29 and probe
    # 0.39-0.47 accurate, chance 0.1; AUROCs 0.91-0.92 and 0.998-1.0; the codec 2.4-2.7 % above the -ELBO).
    assert metrics["cluster"]["accuracy"] > 0.15 and metrics["downstream"]["accuracy"] > 0.25
    anomaly = metrics["anomaly"]
    assert anomaly["corruption"]["best"]["auroc"] > 0.75 and anomaly["ood"]["best"]["auroc"] > 0.9
    compress = metrics["compress"]
    assert compress["neg_elbo_bpp"] < compress["net_bpp"] < 1.1 * compress["neg_elbo_bpp"]  # bits-back's rate
    assert compress["file_bytes"] == (root / "data/compressed/test.vbb").stat().st_size
    assert (root / "plots/generate/samples.png").stat().st_size > 0


def test_the_prior_registry_has_exactly_the_params_choices():
    from vaepipe.core.params import PRIORS as CHOICES
    from vaepipe.vae.priors import PRIORS

    assert tuple(PRIORS) == CHOICES

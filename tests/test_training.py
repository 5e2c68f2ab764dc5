import dataclasses
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaepipe.core.params import load_params
from vaepipe.core.runtime import generator, make_deterministic
from vaepipe.data.datasets import binarize, load_split
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.training import Trainer, TrainingError, fused_adam_step, split_train_val, train
from conftest import REPO_ROOT


def small_run(train_x, val_x, **overrides):
    settings = {"epochs": 2, "lr_schedule": "constant", "kl_warmup": 0.0, **overrides}
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, **settings)
    make_deterministic(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(64,)))
    history = []
    train(model, train_x, val_x, params, seed=0, on_epoch_end=lambda e, t, v: history.append((e, t, v)))
    return model, history


@pytest.fixture(scope="module")
def mnist_small(mnist_raw):
    images, _ = load_split(mnist_raw, "train")
    train_x, val_x = split_train_val(images, val_size=500, seed=0, train_subset=3000)
    return train_x, binarize(val_x, "dynamic", generator(torch.device("cpu"), 0))


def test_split_is_disjoint_seeded_and_sized():
    images = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    train_x, val_x = split_train_val(images, val_size=20, seed=3, train_subset=50)
    assert len(val_x) == 20 and len(train_x) == 50
    assert not set(train_x.squeeze(1).tolist()) & set(val_x.squeeze(1).tolist())
    again, _ = split_train_val(images, val_size=20, seed=3, train_subset=50)
    assert torch.equal(train_x, again)
    other, _ = split_train_val(images, val_size=20, seed=4, train_subset=50)
    assert not torch.equal(train_x, other)


def test_training_lowers_the_loss_on_real_mnist(mnist_small):
    model, history = small_run(*mnist_small)
    assert [e for e, _, _ in history] == [1, 2]
    (_, t1, v1), (_, t2, v2) = history
    assert t2.neg_elbo < t1.neg_elbo and v2.neg_elbo < v1.neg_elbo
    assert 60 < v2.neg_elbo < 300  # nats per image: far below the 543 of a uniform Bernoulli
    # The validation curve against torch.distributions, with the noise validation_stats draws.
    _, val_x = mnist_small
    with torch.no_grad():
        mu, logvar = model.encode(val_x)
        noise = torch.randn(len(val_x), 8, generator=generator(torch.device("cpu"), 0))
        posterior = Normal(mu, torch.exp(0.5 * logvar))
        recon = -Bernoulli(logits=model.decode(mu + noise * posterior.scale)).log_prob(val_x).sum(1).mean()
        kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(1).mean()
    assert (v2.recon, v2.kl) == pytest.approx((recon.item(), kl.item()), rel=1e-4)


def test_training_is_deterministic(mnist_small):
    a, _ = small_run(*mnist_small, lr_schedule="cosine", kl_warmup=0.5)
    b, _ = small_run(*mnist_small, lr_schedule="cosine", kl_warmup=0.5)
    for (name, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(ta, tb), name


def test_divergence_stops_with_the_epoch_named(mnist_small):
    with pytest.raises(TrainingError, match=r"training diverged: the loss became (nan|inf) in epoch 1, "
                                            r"step \d+ of 24; lower `train.lr` \(now 1e\+12\)"):
        small_run(*mnist_small, lr=1e12)


def test_kl_weight_ramps_linearly_over_the_warmup_then_stays(mnist_small):
    train_x, _ = mnist_small
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, beta=2.0, epochs=4, kl_warmup=0.5)
    trainer = Trainer(VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(16,))), train_x, params, seed=0)
    warmup = 2 * trainer.steps_per_epoch
    betas = [trainer.beta_at(step) for step in range(warmup + 3)]
    assert betas[0] == pytest.approx(2.0 / warmup) and betas[warmup - 1] == 2.0 == betas[-1]
    assert all(later > earlier for earlier, later in zip(betas[:warmup], betas[1:warmup]))
    no_warmup = Trainer(trainer.model, train_x, dataclasses.replace(params, kl_warmup=0.0), seed=0)
    assert no_warmup.beta_at(0) == 2.0


def recorded_steps(train_x, epochs, **overrides):
    """Run a tiny Trainer; at every ELBO-gradient call record the batch it trains on, the KL weight and the lr."""
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, epochs=epochs, batch_size=128,
                                 **overrides)
    make_deterministic(0)
    trainer = Trainer(VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(16,))), train_x, params, seed=0)
    records, gradient = [], trainer.elbo_gradient

    def recording_gradient(x, noise, beta, labels):
        records.append((x.clone(), beta, trainer.optimizer.param_groups[0]["lr"]))
        return gradient(x, noise, beta, labels)
    trainer.elbo_gradient = recording_gradient
    for _ in range(epochs):
        trainer.run_epoch()
    return trainer, records


def test_kl_warmup_follows_the_global_step_across_epochs(mnist_small):
    trainer, records = recorded_steps(mnist_small[0][:1024], epochs=3, kl_warmup=1.0, beta=1.0,
                                      lr_schedule="constant")
    total = 3 * trainer.steps_per_epoch
    # One ramp over all three epochs, not one per epoch.
    assert [beta for _, beta, _ in records] == pytest.approx([(step + 1) / total for step in range(total)])


def test_cosine_schedule_anneals_every_step(mnist_small):
    trainer, records = recorded_steps(mnist_small[0][:1024], epochs=2, lr=1e-3, lr_schedule="cosine", kl_warmup=0.0)
    total = 2 * trainer.steps_per_epoch
    expected = [1e-3 * (1 + math.cos(math.pi * step / total)) / 2 for step in range(total)]
    assert [lr for *_, lr in records] == pytest.approx(expected, rel=1e-6)
    _, constant = recorded_steps(mnist_small[0][:1024], epochs=2, lr=1e-3, lr_schedule="constant", kl_warmup=0.0)
    assert {lr for *_, lr in constant} == {1e-3}


def test_fused_adam_step_is_adam_step_to_the_byte():
    """The Trainer's direct call of the fused kernel against torch's own Adam(fused=True).step: the same weights and
    moments, bit for bit, over steps with changing learning rates and gradients; and the same saved state."""
    torch.manual_seed(0)
    ours = torch.randn(1000, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    ours_opt, theirs_opt = (torch.optim.Adam([p], lr=1e-2, fused=True) for p in (ours, theirs))
    for lr in (1e-2, 5e-3, 1e-3, 1e-4):
        grad = torch.randn(1000)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        for optimizer in (ours_opt, theirs_opt):
            optimizer.param_groups[0]["lr"] = lr
        fused_adam_step(ours_opt)
        theirs_opt.step()
        assert torch.equal(ours, theirs)
    ours_state, theirs_state = ours_opt.state_dict(), theirs_opt.state_dict()
    assert ours_state["param_groups"] == theirs_state["param_groups"]
    assert ours_state["state"][0].keys() == theirs_state["state"][0].keys()
    for key, value in ours_state["state"][0].items():
        reference = theirs_state["state"][0][key]
        assert torch.equal(value, reference) and (value.dtype, value.device) == (reference.dtype, reference.device), key


def test_dynamic_binarisation_draws_each_pixel_from_bernoulli_of_its_grey_level():
    levels = torch.tensor([0.0, 0.3, 0.7, 1.0])
    train_x = levels.repeat(1024, 196)  # every image: 196 pixels of each grey level
    _, records = recorded_steps(train_x, epochs=1, binarize="dynamic", kl_warmup=0.0)
    batches = torch.stack([x for x, *_ in records])  # [steps, 128, 784]
    assert set(batches.unique().tolist()) == {0.0, 1.0}
    frequency = batches.reshape(-1, 4).mean(0)  # 200,704 draws per level: standard error < 0.0011
    assert frequency.tolist() == pytest.approx(levels.tolist(), abs=0.005)
    assert not torch.equal(batches[0], batches[1]) and not torch.equal(batches[0, 0], batches[0, 1])
    _, grey = recorded_steps(train_x, epochs=1, binarize="none", kl_warmup=0.0)
    assert all(torch.equal(x, train_x[:len(x)]) for x, *_ in grey)


@pytest.mark.parametrize("changes", [{}, {"arch": "conv", "hidden": (8, 16)}], ids=["hand-written", "autograd"])
def test_bf16_training_is_deterministic_and_keeps_float32_state(mnist_small, changes):
    """train.precision bf16 on both gradient paths: the same bytes twice, float32 weights and Adam moments."""
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, epochs=1, batch_size=128,
                                 precision="bf16", **changes)
    runs = []
    for _ in range(2):
        make_deterministic(0)
        model = VAE(VAEConfig.from_params(8, dataclasses.replace(params, hidden=params.hidden if changes else (128,))))
        trainer = Trainer(model, mnist_small[0][:1024], params, seed=0)
        assert trainer.dtype == torch.bfloat16 and (trainer.elbo_gradient is None) == bool(changes)
        stats = trainer.run_epoch()
        adam = trainer.optimizer.state_dict()["state"][0]
        runs.append((stats, trainer.flat_params.detach().clone(), adam["exp_avg_sq"].clone()))
    (stats, weights, moments), (stats_again, weights_again, moments_again) = runs
    assert weights.dtype == moments.dtype == torch.float32
    assert stats == stats_again and torch.equal(weights, weights_again) and torch.equal(moments, moments_again)

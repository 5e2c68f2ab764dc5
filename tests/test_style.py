"""The conditional VAE behind style transfer: labels reach encoder and decoder, a model trained on real
digits uses them (the judge reads its samples and restyled digits as the class asked for), and the
conditional model loads like any other."""

import dataclasses

import pytest
import torch

from conftest import REPO_ROOT
from vaepipe.core.artifacts import save_weights
from vaepipe.core.params import load_params
from vaepipe.core.paths import CLASSES
from vaepipe.data.datasets import binarize_set, load_split
from vaepipe.generation.judge import share_read_as, train_judge
from vaepipe.generation.style import class_conditional_samples, restyle
from vaepipe.latent.samplers import CodeMixture
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import VAE, VAEConfig, load_model
from vaepipe.vae.training import Trainer, split_train_val, train, validation_stats

PARAMS = load_params(REPO_ROOT / "params.yaml")
CONDITIONAL = VAEConfig(arch="mlp", latent_dim=3, hidden=(16,), classes=CLASSES)


def test_labels_enter_encoder_and_decoder():
    torch.manual_seed(0)
    model = VAE(CONDITIONAL)
    x, labels = torch.rand(4, 784), torch.tensor([0, 3, 3, 9])
    mu, _ = model.encode(x, labels)
    assert not torch.equal(mu, model.encode(x, (labels + 1) % CLASSES)[0])
    # Leading sample dimensions of z share each image's label.
    z = torch.randn(2, 4, CONDITIONAL.latent_dim)
    logits = model.decode(z, labels)
    assert logits.shape == (2, 4, 784)
    torch.testing.assert_close(logits[1], model.decode(z[1], labels))
    assert not torch.equal(logits, model.decode(z, (labels + 1) % CLASSES))
    with pytest.raises(ValueError, match="a conditional model needs class labels"):
        model.encode(x)
    with pytest.raises(ValueError, match="an unconditional model takes no class labels"):
        VAE(dataclasses.replace(CONDITIONAL, classes=0)).decode(z, labels)


def test_a_conditional_model_is_an_mlp_with_a_normal_prior():
    for change in ({"arch": "conv", "hidden": (8,)}, {"prior": "mog", "prior_components": 3}):
        with pytest.raises(ValueError, match="a conditional model is an mlp with a normal prior"):
            VAE(dataclasses.replace(CONDITIONAL, **change))


def test_conditional_model_file_round_trips_and_older_files_load(tmp_path):
    model = VAE(CONDITIONAL)
    save_weights(tmp_path / "cvae.safetensors", model.state_dict(), CONDITIONAL.to_dict())
    assert load_model(str(tmp_path / "cvae.safetensors"), torch.device("cpu")).config == CONDITIONAL
    # Model files written before conditional models existed have no `classes` key: unconditional.
    old = {k: v for k, v in dataclasses.replace(CONDITIONAL, classes=0).to_dict().items() if k != "classes"}
    assert VAEConfig.from_dict(old).classes == 0


def test_restyle_renders_each_code_as_every_class_in_order():
    torch.manual_seed(1)
    model = VAE(CONDITIONAL)
    codes = torch.randn(3, CONDITIONAL.latent_dim)
    images, labels = restyle(model, codes)
    assert images.shape == (3 * CLASSES, 784) and labels.tolist() == list(range(CLASSES)) * 3
    torch.testing.assert_close(images[2 * CLASSES + 7], decode_probs(model, codes[2:3], torch.tensor([7]))[0])
    samples, sample_labels = class_conditional_samples(model, 25, torch.Generator().manual_seed(0))
    assert samples.shape == (25, 784) and torch.bincount(sample_labels).tolist() == [3] * 5 + [2] * 5


def test_class_conditional_samples_from_a_density_make_their_round_trips_with_their_labels():
    torch.manual_seed(1)
    model = VAE(CONDITIONAL)
    density = CodeMixture(torch.randn(200, CONDITIONAL.latent_dim).numpy() * 0.3 + 1.0, 2, seed=0)
    samples, labels = class_conditional_samples(model, 20, torch.Generator().manual_seed(0), density, round_trips=2)
    z = density.sample(20, torch.Generator().manual_seed(0))
    for _ in range(2):  # each trip decodes and encodes a code with its own sample's label
        z = posterior_means(model, decode_probs(model, z, labels), labels)
    torch.testing.assert_close(samples, decode_probs(model, z, labels))
    prior_samples, _ = class_conditional_samples(model, 20, torch.Generator().manual_seed(0))
    assert not torch.allclose(samples, prior_samples)  # the density's codes, not N(0, I)'s


def test_a_conditional_model_trains_by_the_hand_written_gradient():
    model = VAE(CONDITIONAL)
    params = PARAMS.style.train_params(PARAMS.train)
    trainer = Trainer(model, torch.rand(8, 784), params, seed=0, train_labels=torch.arange(8))
    assert trainer.elbo_gradient is not None  # its parity with autograd: tests/test_gradients.py
    assert params.arch == "mlp" and params.prior == "normal" and params.epochs == PARAMS.style.epochs


@pytest.fixture(scope="module")
def trained(mnist_raw):
    """A small conditional VAE and a judge, both trained on 10,000 real training digits."""
    images, labels = load_split(mnist_raw, "train")
    params = dataclasses.replace(PARAMS.style.train_params(PARAMS.train), hidden=(256,), epochs=8, val_size=1000,
                                 train_subset=10000)
    train_x, val_x = split_train_val(images, params.val_size, 0, params.train_subset)
    train_y, val_y = split_train_val(labels, params.val_size, 0, params.train_subset)
    torch.manual_seed(0)
    model = VAE(dataclasses.replace(CONDITIONAL, latent_dim=4, hidden=params.hidden))
    train(model, train_x, binarize_set(val_x, params.binarize), params, 0, lambda *epoch: None,
          labels=(train_y, val_y))
    judge = train_judge(train_x, train_y, dataclasses.replace(PARAMS.judge, epochs=2, batch_size=64), torch.device("cpu"))
    test_x, test_y = load_split(mnist_raw, "test")
    return model, judge, test_x[:1000], test_y[:1000]


@pytest.mark.slow
def test_the_trained_model_uses_the_label(trained):
    model, _, test_x, test_y = trained
    test_bits = binarize_set(test_x, "dynamic")
    right = validation_stats(model, test_bits, 1.0, 0, test_y)
    wrong = validation_stats(model, test_bits, 1.0, 0, (test_y + 1) % CLASSES)
    # Told the wrong class, the decoder draws the wrong digit: far less likely images.
    assert wrong.neg_elbo > right.neg_elbo + 20  # measured: 138.1 nats given the label, 180.9 given the next


def test_the_judge_reads_samples_and_restyled_digits_as_the_class_asked_for(trained):
    model, judge, test_x, test_y = trained
    samples, labels = class_conditional_samples(model, 500, torch.Generator().manual_seed(0))
    # Chance is 0.1. After 8 epochs on 10,000 digits, the judge (0.966 on real test digits) read 0.75 of the
    # samples and 0.60 of the restyled digits as asked; the default model's are in metrics/style.json.
    assert share_read_as(judge.predict(samples)[0], labels) > 0.5
    restyled, targets = restyle(model, posterior_means(model, test_x[:50], test_y[:50]))
    assert share_read_as(judge.predict(restyled)[0], targets) > 0.5

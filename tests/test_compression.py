import numpy as np
import pytest
import torch

from vaepipe.codecs.bitsback import BitsBackCoder, LatentBins
from vaepipe.codecs.container import pack, unpack
from vaepipe.core.errors import DataError
from vaepipe.data.datasets import binarize_set, load_split
from vaepipe.vae.model import VAE, VAEConfig, load_model

PRECISION, BATCH = 8, 100


def test_latent_bins_have_equal_prior_mass_and_posterior_masses_sum_to_one():
    bins = LatentBins(6)
    masses = bins.posterior_masses(torch.zeros(1), torch.zeros(1))  # the prior itself
    np.testing.assert_allclose(masses, np.full((1, 64), 1 / 64), rtol=1e-9)
    masses = bins.posterior_masses(torch.tensor([1.3, -0.2]), torch.tensor([-12.0, 1.0]))
    np.testing.assert_allclose(masses.sum(axis=1), 1.0, rtol=1e-12)
    assert masses[0].argmax() == int(np.searchsorted(bins.edges.numpy(), 1.3))  # a narrow posterior's bin
    assert torch.all(bins.centres[1:] > bins.centres[:-1])


@pytest.fixture(scope="module")
def test_images(mnist_raw):
    return binarize_set(load_split(mnist_raw, "test")[0][:250], "dynamic").to(torch.uint8)


def test_round_trip_is_bit_exact_with_any_weights(test_images):
    torch.manual_seed(0)
    coder = BitsBackCoder(VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(32,))), PRECISION, BATCH)
    words = coder.encode(test_images)  # 250 images: two full batches and a short one
    assert words.dtype == np.uint32
    assert torch.equal(coder.decode(words, len(test_images)), test_images)


@pytest.mark.parametrize("damage", ["other-model", "truncated", "bit-flip", "fewer-images"])
def test_wrong_model_or_damaged_words_are_refused(test_images, damage):
    torch.manual_seed(0)
    config = VAEConfig(arch="mlp", latent_dim=4, hidden=(32,))
    coder = BitsBackCoder(VAE(config), PRECISION, BATCH)
    words, n = coder.encode(test_images), len(test_images)
    if damage == "other-model":
        coder = BitsBackCoder(VAE(config), PRECISION, BATCH)  # other random weights
    elif damage == "truncated":
        words = words[: len(words) // 2]
    elif damage == "bit-flip":
        words = words.copy()
        words[len(words) // 3] ^= np.uint32(1 << 7)
    else:
        n -= 1
    with pytest.raises(DataError, match="does not decode with this model|not valid ANS data"):
        coder.decode(words, n)


def test_rate_is_the_negative_elbo(tiny_run, test_images):
    """Bits-back coding costs the -ELBO: the net code length (less the initial words) of a trained model
    is within 3 % of its -ELBO in bits, computed here independently with torch.distributions."""
    model = load_model(tiny_run / "models/vae.safetensors", torch.device("cpu")).eval()
    coder = BitsBackCoder(model, PRECISION, BATCH)
    net_bits = len(coder.encode(test_images)) * 32 - coder.initial_bits()
    x = test_images.float()
    with torch.no_grad():
        mu, logvar = model.encode(x)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum()
        z = q.sample((200,))
        recon = -torch.distributions.Bernoulli(logits=model.decode(z)).log_prob(x).sum() / 200
    neg_elbo_bits = float(kl + recon) / np.log(2)
    assert abs(net_bits - neg_elbo_bits) / neg_elbo_bits < 0.03


def packed_example() -> tuple[bytes, np.ndarray]:
    words = np.array([7, 2 ** 32 - 1, 12345], dtype=np.uint32)
    return pack(words, {"model_sha256": "ab" * 32, "n_images": 3}), words


def test_pack_unpack_round_trip():
    data, words = packed_example()
    header, unpacked = unpack(data, "x.vbb")
    assert header == {"format_version": 1, "model_sha256": "ab" * 32, "n_images": 3}
    assert unpacked.dtype == np.uint32 and np.array_equal(unpacked, words)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:-5], "x.vbb: checksum mismatch: the file is truncated or corrupted"),
    (lambda d: d[:20], "x.vbb: checksum mismatch: the file is truncated or corrupted"),
    (lambda d: d[:30] + bytes([d[30] ^ 4]) + d[31:], "x.vbb: checksum mismatch: the file is truncated or corrupted"),
    (lambda d: b"PK" + d[2:], "x.vbb: not a vaepipe compressed file (no VAEBBANS header)"),
    (lambda d: b"", "x.vbb: not a vaepipe compressed file (no VAEBBANS header)"),
], ids=["truncated-end", "truncated-header", "bit-flip", "other-format", "empty"])
def test_damaged_files_are_refused(damage, message):
    data, _ = packed_example()
    with pytest.raises(DataError) as refused:
        unpack(damage(data), "x.vbb")
    assert str(refused.value) == message

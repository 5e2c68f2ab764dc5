"""The lossy codec (vaepipe.codecs.lossy): exact, deterministic decoding of the quantised codes, files
refused when damaged anywhere or made with another model, and a rate that falls as the step grows."""

import dataclasses
import math

import pytest
import torch

from vaepipe.codecs.bitsback import decode_file as decode_lossless, encode_file as encode_lossless
from vaepipe.codecs.container import pack, unpack
from vaepipe.codecs.lossy import LatentQuantizer, check_step, decode_file, encode_file, reconstruct
from vaepipe.core.errors import DataError, InputError
from vaepipe.core.params import load_params
from vaepipe.data.datasets import load_split
from vaepipe.vae.codes import posterior_means
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.training import train
from conftest import REPO_ROOT

SHA = "0" * 64  # the model's sha256 as the header records it; the tests pass the same to the decoder


def random_model(seed: int = 0, **config) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(**{"arch": "mlp", "latent_dim": 4, "hidden": (32,), **config})).eval()


def random_images(n: int = 300, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("step", [0.05, 0.5, 2.0])
def test_decoding_gives_the_codes_and_the_decoder_s_images_computed_in_pytorch(step):
    model, images = random_model(), random_images()
    # Posterior means large enough to use many codes: the random encoder's are small.
    with torch.no_grad():
        model.encoder[-1].weight.mul_(20)
    data, codes = encode_file(images, model, SHA, step, {})
    header, decoded_codes, decoded = decode_file(data, "f.vlc", model, "m", SHA)
    assert header["n_images"] == 300 and header["step"] == step
    with torch.no_grad():
        mu = model.encode(images)[0]
        bound = math.ceil(8 / step)  # |z| <= 8
        expected_codes = torch.round(mu / step).clamp(-bound, bound).to(torch.int32)
        expected_images = torch.sigmoid(model.decode(expected_codes.float() * step))
    assert torch.equal(decoded_codes, expected_codes) and torch.equal(codes, expected_codes)
    assert len(torch.unique(codes)) > 5
    assert decoded.dtype == torch.float32 and torch.equal(decoded, expected_images)
    # Deterministic: the same images give the same file, which decodes to the same bytes.
    assert encode_file(images, model, SHA, step, {})[0] == data
    assert decode_file(data, "f.vlc", model, "m", SHA)[2].numpy().tobytes() == decoded.numpy().tobytes()


def ideal_bits(quantizer: LatentQuantizer, codes: torch.Tensor) -> torch.Tensor:
    """-log2 of the entropy model's mass on each image's codes [N], from torch.distributions: an ideal entropy
    coder's length for them."""
    normal = torch.distributions.Normal(quantizer.means, quantizer.stds)
    q = codes.to(torch.float64)
    mass = normal.cdf((q + 0.5) * quantizer.step) - normal.cdf((q - 0.5) * quantizer.step)
    return -torch.log2(mass).sum(dim=1)


def test_codes_beyond_the_alphabet_are_clipped_and_still_decode():
    quantizer = LatentQuantizer(0.5)
    codes = quantizer.quantize(torch.tensor([[100.0, -100.0, 0.2, 7.9]]))
    assert codes.tolist() == [[quantizer.bound, -quantizer.bound, 0, 16]]
    assert torch.equal(quantizer.decode(quantizer.encode(codes), 1, 4), codes)


def test_the_file_costs_the_ideal_code_length_under_the_prior():
    model, images = random_model(), random_images(1000)
    quantizer = LatentQuantizer(0.25)
    codes = quantizer.quantize(posterior_means(model, images))
    payload_bits = 32 * len(quantizer.encode(codes))
    ideal = ideal_bits(quantizer, codes).sum().item()
    assert ideal <= payload_bits <= ideal * 1.01 + 64


def test_every_damaged_byte_is_refused():
    model = random_model()
    data, _ = encode_file(random_images(20), model, SHA, 0.5, {})
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        with pytest.raises(DataError):
            decode_file(bytes(damaged), "f.vlc", model, "m", SHA)
    with pytest.raises(DataError, match="truncated or corrupted"):
        decode_file(data[:-1], "f.vlc", model, "m", SHA)


def test_a_file_of_another_model_is_refused():
    data, _ = encode_file(random_images(20), random_model(0), SHA, 0.5, {})
    with pytest.raises(DataError, match="was compressed with another model"):
        decode_file(data, "f.vlc", random_model(1), "other.safetensors", "1" * 64)


def test_crafted_files_are_refused_with_the_field_named():
    model = random_model()
    data, _ = encode_file(random_images(20), model, SHA, 0.5, {})
    header, words = unpack(data, "f.vlc")
    del header["format_version"]
    for field, value, message in [("step", 0.0, "header field `step` is 0.0"), ("latent_dim", 5, "codes of 5 latents"),
                                  ("n_images", 21, "checksum of them"), ("n_images", 19, "holds more than the header's images"),
                                  ("codes_sha256", "x" * 64, "checksum of them")]:
        with pytest.raises(DataError, match=message):
            decode_file(pack(words, {**header, field: value}), "f.vlc", model, "m", SHA)


def test_lossless_and_lossy_files_are_told_apart():
    model = random_model()
    lossy, _ = encode_file(random_images(20), model, SHA, 0.5, {})
    binary = (random_images(20) > 0.5).to(torch.uint8)
    lossless = encode_lossless(binary, model, SHA, 8, 10, {})
    with pytest.raises(DataError, match="a lossless file, not a lossy one"):
        decode_file(lossless, "f.vbb", model, "m", SHA)
    with pytest.raises(DataError, match="a lossy file, not a lossless one"):
        decode_lossless(lossy, "f.vlc", model, "m", SHA)


@pytest.mark.parametrize("step", [0, -1, 0.0001, 9, float("nan"), float("inf"), "1"])
def test_a_bad_step_is_refused(step):
    with pytest.raises(InputError, match="the quantisation step must be a number in"):
        check_step(step)


def test_a_model_with_a_learned_prior_codes_under_fitted_gaussians_only():
    model = random_model(prior="mog", prior_components=3)
    data, codes = encode_file(random_images(5), model, SHA, 0.5, {})
    header, decoded_codes, _ = decode_file(data, "f.vlc", model, "m", SHA)
    assert header["entropy_model"] is not None and torch.equal(decoded_codes, codes)
    with pytest.raises(InputError, match="the entropy model `prior` is N\\(0, I\\), and this model's prior is 'mog'"):
        encode_file(random_images(5), model, SHA, 0.5, {}, entropy_model="prior")


def test_a_conditional_model_is_refused():
    with pytest.raises(InputError, match="needs a model without a class input; this one takes 10 classes"):
        encode_file(random_images(5), random_model(classes=10), SHA, 0.5, {})


@pytest.fixture(scope="module")
def trained_model(mnist_raw) -> tuple[VAE, torch.Tensor]:
    """A small VAE trained on 5,000 real digits for 5 epochs, and 500 test digits."""
    train_x = load_split(mnist_raw, "train")[0][:6000].reshape(-1, 784)
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, epochs=5, hidden=(256,),
                                 precision="fp32", nproc=1)
    model = random_model(latent_dim=8, hidden=(256,))
    train(model, train_x[:5000], train_x[5000:], params, 0, lambda *stats: None)
    return model.eval(), load_split(mnist_raw, "test")[0][:500].reshape(-1, 784)


def test_rate_falls_and_distortion_grows_with_the_step(trained_model):
    model, images = trained_model
    sizes, errors = [], []
    for step in (0.1, 0.5, 1.0, 2.0, 4.0):
        data, codes = encode_file(images, model, SHA, step, {})
        decoded = reconstruct(model, LatentQuantizer(step), codes)
        sizes.append(len(data))
        errors.append(((decoded - images) ** 2).mean().item())
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


def test_auto_writes_the_smaller_of_the_prior_and_the_fitted_gaussians():
    model, images = random_model(), random_images(500)
    sizes = {}
    for choice in ("prior", "fitted", "auto"):
        data, codes = encode_file(images, model, SHA, 0.1, {}, entropy_model=choice)
        header, decoded_codes, _ = decode_file(data, "f.vlc", model, "m", SHA)
        assert torch.equal(decoded_codes, codes)
        assert (header["entropy_model"] is None) == (choice == "prior")
        sizes[choice] = len(data)
    # A random encoder's means spread far less than N(0, 1): the fitted Gaussians code them in fewer bits.
    assert sizes["fitted"] < sizes["prior"] and sizes["auto"] == sizes["fitted"]
    with pytest.raises(InputError, match="the entropy model must be one of auto, prior, fitted"):
        encode_file(images, model, SHA, 0.1, {}, entropy_model="laplace")


@pytest.mark.parametrize("gaussians", [{"means": [0.0] * 3, "stds": [1.0] * 3}, {"means": [0.0] * 4},
                                       {"means": [0.0] * 4, "stds": [0.0] * 4}, "normal", False])
def test_a_crafted_entropy_model_is_refused(gaussians):
    model = random_model()
    data, _ = encode_file(random_images(20), model, SHA, 0.5, {}, entropy_model="fitted")
    header, words = unpack(data, "f.vlc")
    del header["format_version"]
    header = {**header, "entropy_model": gaussians} if gaussians is not False else {
        k: v for k, v in header.items() if k != "entropy_model"}
    with pytest.raises(DataError, match="header field `entropy_model` is not a Gaussian a latent"):
        decode_file(pack(words, header), "f.vlc", model, "m", SHA)

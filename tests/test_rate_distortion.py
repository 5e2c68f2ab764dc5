"""The rate-distortion study's pieces: the classical codecs' byte counts from real encodes, the PCA codec on the
VAE codec's quantiser, and the bytes a codec needs for an accuracy, interpolated on hand-worked curves."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from vaepipe.codecs.baselines import PCACodec, binary_png, pillow_codec
from vaepipe.codecs.container import unpack
from vaepipe.codecs.rate_distortion import bytes_for_accuracy, summary
from vaepipe.data.datasets import load_split
from test_lossy_compression import ideal_bits


@pytest.fixture(scope="module")
def digits(mnist_raw):
    train = load_split(mnist_raw, "train")[0][:3000].reshape(-1, 784)
    test = load_split(mnist_raw, "test")[0][:200].reshape(-1, 784)
    return train, test


@pytest.mark.parametrize("file_format", ["JPEG", "WEBP"])
def test_pillow_sizes_are_the_files_as_written_and_grow_with_quality(digits, file_format):
    images = digits[1][:20]
    sizes, decoded = pillow_codec(images, file_format, 10)
    buffer = io.BytesIO()
    picture = Image.fromarray((images[3].view(28, 28) * 255).round().to(torch.uint8).numpy(), mode="L")
    picture.save(buffer, format=file_format, quality=10)
    assert sizes[3] == len(buffer.getvalue())
    reread = np.array(Image.open(buffer).convert("L"))  # WebP stores grey as colour
    assert torch.equal(decoded[3], torch.from_numpy(reread).view(-1).float() / 255)
    assert decoded.shape == images.shape
    better_sizes, better = pillow_codec(images, file_format, 90)
    assert better_sizes.sum() > sizes.sum()
    assert ((better - images) ** 2).mean() < ((decoded - images) ** 2).mean()


def test_binary_png_is_lossless_for_the_binarised_digits(digits):
    images = digits[1][:20]
    sizes, decoded = binary_png(images)
    assert torch.equal(decoded, ((images * 255).round() > 127).float())
    assert (sizes > 60).all() and (sizes < 300).all()  # a PNG's fixed chunks alone take 57 bytes


def test_the_pca_codec_costs_less_and_reconstructs_worse_as_the_step_grows(digits):
    train, test = digits
    pca = PCACodec(train, 100, seed=0)
    sizes, errors = [], []
    for step in (0.1, 0.5, 1.0, 2.0, 4.0):
        data, decoded = pca.compress(test, step)
        header, words = unpack(data, "pca")
        assert header["n_images"] == len(test)
        codes = pca.quantizer(step).quantize((test.double() - pca.mean) @ pca.basis.T)
        ideal = ideal_bits(pca.quantizer(step), codes).sum().item()
        assert ideal <= 32 * len(words) <= ideal * 1.01 + 64  # the VAE codec's coder, under N(0, variance)
        sizes.append(len(data))
        errors.append(((decoded - test) ** 2).mean().item())
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] < 0.01  # 100 components, fine steps: close to the digits


def points(*pairs):
    return [{"bytes_per_image": b, "accuracy": a} for b, a in pairs]


def test_bytes_for_an_accuracy_follow_the_lower_envelope():
    curve = points((2.0, 0.80), (4.0, 0.90), (3.0, 0.70), (8.0, 0.96), (6.0, 0.85))  # unordered; 3 and 6 dominated
    assert bytes_for_accuracy(curve, 0.90) == 4.0
    assert bytes_for_accuracy(curve, 0.85) == pytest.approx(3.0)  # halfway from (2, 0.80) to (4, 0.90)
    assert bytes_for_accuracy(curve, 0.93) == pytest.approx(6.0)  # halfway from (4, 0.90) to (8, 0.96)
    assert bytes_for_accuracy(curve, 0.50) == 2.0  # the smallest point reaches it already
    assert bytes_for_accuracy(curve, 0.97) is None


def test_the_summary_compares_at_equal_accuracy():
    vae = points((2.0, 0.90), (4.0, 0.96))
    pca = points((4.0, 0.90), (10.0, 0.96))
    pillow = points((100.0, 0.95), (150.0, 0.99))
    result = summary(vae, pca, pillow, [0.90, 0.93])
    assert result["accuracy_levels"]["0.90"]["vae_to_pca"] == pytest.approx(0.5)
    assert result["accuracy_levels"]["0.93"]["vae_to_pca"] == pytest.approx(3.0 / 7.0)
    assert result["max_vae_to_pca"] == pytest.approx(0.5)
    assert result["best_within_6_bytes"]["accuracy"] == 0.96
    # At 0.90 and 0.93 the cheapest JPEG/WebP at least as accurate is the 100-byte file (0.95).
    assert result["accuracy_levels"]["0.93"]["vae_to_jpeg_webp"] == pytest.approx(3.0 / 100.0)
    # The most accurate VAE point (0.96) is only matched by the 150-byte one.
    assert result["most_accurate_vae"]["ratio"] == pytest.approx(4.0 / 150.0)

"""Anomaly scores on small synthetic inputs whose ordering is known, and the detection metrics."""

import math

import numpy as np
import pytest
import torch

from vaepipe.anomaly.detector import (COMBINED, Detector, NormalProfile, SCORES, context_code_length,
                                      detection_metrics, evaluate_detection, image_statistics, scores_from,
                                      tail_surprise, threshold_at)
from vaepipe.core.errors import ArtifactError
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE
from vaepipe.data.datasets import binarize_each_image
from vaepipe.vae.model import VAE, VAEConfig

LOGIT = -3.0  # the decoder below says every pixel is 1 with probability sigmoid(-3) ~ 0.047


def constant_model() -> VAE:
    """A VAE whose q(z|x) and p(x|z) ignore their inputs: q = N(0, I) = p(z), p(pixel = 1) = sigmoid(LOGIT).
    Then every importance weight is p(x), so the estimate of -log p(x) is exact (and linear in the number
    of lit pixels), the KL is 0, and the reconstruction is sigmoid(LOGIT) everywhere."""
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(8,)))
    with torch.no_grad():
        for layer in (model.encoder[-1], model.decoder[-1]):
            layer.weight.zero_()
        model.encoder[-1].bias.zero_()
        model.decoder[-1].bias.fill_(LOGIT)
    return model


def image_with(pixels: torch.Tensor) -> torch.Tensor:
    x = torch.zeros(IMAGE_PIXELS)
    x[pixels] = 1.0
    return x


def test_nll_and_recon_error_grow_with_the_ink_and_nll_is_exact():
    model = constant_model()
    counts = [0, 10, 100, 300]
    x = torch.stack([image_with(torch.arange(n)) for n in counts])
    stats = image_statistics(model, x, k=4)
    p1 = 1 / (1 + math.exp(-LOGIT))
    expected = [-(n * math.log(p1) + (IMAGE_PIXELS - n) * math.log(1 - p1)) for n in counts]
    np.testing.assert_allclose(stats["nll"], expected, rtol=1e-5)
    np.testing.assert_allclose(stats["kl"], 0, atol=1e-6)
    np.testing.assert_allclose(stats["recon_error"], [n * (1 - p1) ** 2 + (IMAGE_PIXELS - n) * p1 ** 2 for n in counts],
                               rtol=1e-4)


def test_complexity_ranks_a_simple_image_above_a_noisy_one_with_the_same_likelihood():
    """Same number of lit pixels, so the same nll: a solid block is simple (few bits under a generic code),
    scattered pixels are not. The model explains neither, so the simple one is the more suspicious."""
    block = image_with((torch.arange(IMAGE_SIDE)[:10, None] * IMAGE_SIDE + torch.arange(10)).flatten())
    scattered = image_with(torch.randperm(IMAGE_PIXELS, generator=torch.Generator().manual_seed(0))[:100])
    stats = image_statistics(constant_model(), torch.stack([block, scattered]), k=2)
    scores = scores_from(stats, NormalProfile.fit(stats_cloud(), seed=0))
    assert stats["nll"][0] == pytest.approx(stats["nll"][1])
    assert stats["code_length"][0] < stats["code_length"][1] - 100
    assert scores["complexity"][0] > scores["complexity"][1] + 100
    assert scores["complexity"][0] == pytest.approx(stats["nll"][0] / math.log(2) - stats["code_length"][0])


def sequential_code_length(image: torch.Tensor) -> float:
    """The adaptive context coder written pixel by pixel: the reference for the closed form."""
    img = image.view(IMAGE_SIDE, IMAGE_SIDE).long()
    ones, seen, bits = [0] * 16, [0] * 16, 0.0
    def at(r, c):
        return int(img[r, c]) if 0 <= r and 0 <= c < IMAGE_SIDE else 0
    for r in range(IMAGE_SIDE):
        for c in range(IMAGE_SIDE):
            ctx = at(r, c - 1) | at(r - 1, c - 1) << 1 | at(r - 1, c) << 2 | at(r - 1, c + 1) << 3
            p_one = (ones[ctx] + 0.5) / (seen[ctx] + 1)
            bits -= math.log2(p_one if img[r, c] else 1 - p_one)
            ones[ctx] += int(img[r, c])
            seen[ctx] += 1
    return bits


def test_context_code_length_matches_the_pixel_by_pixel_coder():
    gen = torch.Generator().manual_seed(1)
    images = torch.stack([torch.zeros(IMAGE_PIXELS), torch.ones(IMAGE_PIXELS),
                          (torch.rand(IMAGE_PIXELS, generator=gen) < 0.5).float(),
                          (torch.rand(IMAGE_PIXELS, generator=gen) < 0.1).float()])
    got = context_code_length(images).double()
    expected = torch.tensor([sequential_code_length(i) for i in images], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-3)
    assert got[0] < 10 and got[1] < 25  # a constant image costs a few bits (the border contexts learn too)
    assert 700 < got[2] < 830  # fair coin flips: about one bit a pixel


def test_binarisation_is_bernoulli_and_the_same_wherever_the_image_appears():
    grey = torch.full((1, IMAGE_PIXELS), 0.3)
    bits = binarize_each_image(grey)
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    assert abs(bits.mean().item() - 0.3) < 0.05
    assert torch.equal(binarize_each_image(torch.cat([torch.rand(5, IMAGE_PIXELS), grey]))[-1], bits[0])
    assert binarize_each_image(torch.ones(1, IMAGE_PIXELS)).min() == 1 and binarize_each_image(torch.zeros(1, IMAGE_PIXELS)).max() == 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_image_scores_the_same_alone_and_among_others(precision):
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(256,)))
    x = torch.rand(7, IMAGE_PIXELS)
    together = image_statistics(model, x, k=5, precision=precision)
    alone = image_statistics(model, x[3:4], k=5, precision=precision)
    for name in together:
        np.testing.assert_allclose(alone[name][0], together[name][3], rtol=1e-5, atol=1e-4)
    if precision == "bf16":  # bf16 passes: the sums stay float32, and the likelihood moves little
        exact = image_statistics(model, x, k=5)
        np.testing.assert_allclose(together["nll"], exact["nll"], rtol=1e-3)
        assert together["nll"].dtype == np.float64 and not np.array_equal(together["nll"], exact["nll"])


def stats_cloud(n: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"nll": rng.normal(100, 10, n), "kl": rng.normal(25, 3, n), "recon_error": rng.normal(5, 1, n),
            "code_length": rng.normal(150, 20, n)}


def test_typicality_flags_atypical_statistics_in_either_direction_and_survives_a_round_trip(tmp_path):
    profile = NormalProfile.fit(stats_cloud(), seed=0)
    probe = {"nll": np.array([100.0, 160.0, 40.0]), "kl": np.array([25.0, 25, 25]),
             "recon_error": np.array([5.0, 5, 5]), "code_length": np.array([150.0, 150, 150])}
    scores = scores_from(probe, profile)
    assert scores["typicality"][0] < scores["typicality"][1] and scores["typicality"][0] < scores["typicality"][2]
    detector = Detector(profile, {s: float(i) for i, s in enumerate(SCORES)}, "typicality", 0.05, 8, "bf16", "ab" * 32)
    detector.save(tmp_path / "detector.safetensors")
    loaded = Detector.load(tmp_path / "detector.safetensors")
    for name, values in scores_from(probe, loaded.profile).items():
        np.testing.assert_allclose(values, scores[name], rtol=1e-10)
    assert (loaded.thresholds, loaded.score, loaded.k, loaded.precision, loaded.model_sha256) == (
        detector.thresholds, "typicality", 8, "bf16", "ab" * 32)


def test_a_detector_that_names_no_known_precision_is_refused(tmp_path):
    """Without its precision a detector's thresholds cannot be matched (files from before it was recorded)."""
    path = tmp_path / "detector.safetensors"
    Detector(NormalProfile.fit(stats_cloud(), seed=0), {s: 0.0 for s in SCORES}, "nll", 0.05, 8, "fp16",
             "ab" * 32).save(path)
    with pytest.raises(ArtifactError, match="not a readable vaepipe detector file .*precision 'fp16' is neither fp32 nor bf16"):
        Detector.load(path)


def test_tail_surprise_is_minus_the_log_of_a_conservative_p_value():
    reference = np.arange(99.0)  # 99 normal scores 0..98
    surprise = tail_surprise(reference, np.array([-5.0, 49.0, 98.0, 500.0]))
    # At least as high: all 99, 50 of them, 1, none; p = (count + 1) / 100.
    np.testing.assert_allclose(surprise, -np.log([1.0, 0.51, 0.02, 0.01]))


def test_combined_flags_what_either_member_flags_and_ranks_both_above_one():
    """A probe atypical in its statistics only (typicality out, complexity usual), one with a complexity out
    of range only, one with both and one with neither: the combined score ranks both > either one > neither."""
    profile = NormalProfile.fit(stats_cloud(), seed=0)
    normal = scores_from(stats_cloud(seed=1), profile)
    probe = scores_from(stats_cloud(n=4, seed=2), profile)
    q = {name: np.quantile(normal[name], [0.5, 0.999]) for name in COMBINED}
    # The members' values set directly: the sum is what is under test.
    members = {"typicality": np.array([q["typicality"][0], q["typicality"][1], q["typicality"][0], q["typicality"][1]]),
               "complexity": np.array([q["complexity"][0], q["complexity"][0], q["complexity"][1], q["complexity"][1]])}
    combined = sum(tail_surprise(profile.reference[name], members[name]) for name in COMBINED)
    neither, typical_only, complexity_only, both = combined
    assert neither < 2 < min(typical_only, complexity_only) and both > max(typical_only, complexity_only) + 2
    # scores_from computes it the same way from statistics.
    expected = sum(tail_surprise(profile.reference[name], probe[name]) for name in COMBINED)
    np.testing.assert_allclose(probe["combined"], expected)
    # The reference is the fit images' own member scores, sorted.
    fitted = scores_from(stats_cloud(), profile)
    for name in COMBINED:
        np.testing.assert_array_equal(profile.reference[name], np.sort(fitted[name]))


def test_a_file_that_is_not_a_detector_is_refused(tmp_path):
    path = tmp_path / "detector.safetensors"
    with pytest.raises(ArtifactError, match="detector file is missing"):
        Detector.load(path)
    path.write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match="not a readable vaepipe detector file"):
        Detector.load(path)


def test_detection_metrics_on_known_separations():
    normal = np.arange(100.0)
    perfect = detection_metrics(normal, normal + 1000)
    assert perfect == {"auroc": 1.0, "auprc": 1.0, "fpr_at_95_tpr": 0.0}
    assert detection_metrics(normal, normal - 1000)["auroc"] == 0.0
    assert detection_metrics(normal, normal - 1000)["fpr_at_95_tpr"] == 1.0
    # Half of the anomalies above every normal image, half mixed in: AUROC = 0.5 + 0.5 * 0.5.
    half = np.r_[normal[::2] + 0.5, normal[::2] + 1000]
    assert detection_metrics(normal, half)["auroc"] == pytest.approx(0.75, abs=0.01)


def test_threshold_flags_the_requested_share_of_normal_images():
    normal = np.random.default_rng(0).normal(size=10000)
    threshold = threshold_at(normal, 0.05)
    assert np.mean(normal > threshold) == pytest.approx(0.05, abs=0.001)


def test_best_score_and_detector_are_chosen_on_validation_not_test():
    """On validation `nll` separates and `recon_error` does not; on test the other way round: the choice
    must follow validation."""
    rng = np.random.default_rng(0)
    def scores(good: str) -> dict[str, np.ndarray]:
        return {s: rng.normal(size=200) + (5.0 if s == good else 0.0) for s in SCORES}
    normal = {s: rng.normal(size=200) for s in SCORES}
    data = {"val": {"normal": normal, "ood": scores("nll"), "stripe": scores("nll")},
            "test": {"normal": normal, "ood": scores("recon_error"), "stripe": scores("recon_error")}}
    metrics, thresholds = evaluate_detection(data, ["stripe"], 0.1)
    assert metrics["ood"]["best"]["score"] == "nll" and metrics["corruption"]["best"]["score"] == "nll"
    assert metrics["ood"]["best"]["auroc"] == metrics["ood"]["nll"]["auroc"] < 0.7
    assert metrics["detector"]["score"] == "nll"
    assert metrics["corruption"]["mean"]["nll"] == metrics["corruption"]["stripe"]["nll"]
    assert thresholds["nll"] == threshold_at(normal["nll"], 0.1)

"""The benchmark script runs end to end and reports consistent numbers (a smoke run: one short repetition;
its timings are not asserted against any target, only for being measured)."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_benchmark_runs_and_reports_every_measurement(mnist_raw, tiny_run, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "benchmark.py"), "--data", str(mnist_raw),
                           "--device", "cpu", "--repeats", "1", "--epochs", "1", "--train-images", "1280", "--eval-images", "20",
                           "--eval-k", "50", "--model", str(tiny_run / "models/vae.safetensors"),
                           "--compress-images", "150", "--nll-epochs", "1", "--nll-train-subset", "500",
                           "--nll-images", "50", "--nll-k", "20", "--nll-seeds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    train, evaluation, nll = summary["train"], summary["eval"], summary["nll"]
    assert train["images"] == 1280  # canonical and ours time an epoch of the same first 1,280 digits
    for precision in ("fp32", "bf16"):
        assert summary["matmul_peak_gflops"][precision] > 0
        ours = train[precision]
        assert ours["speedup"] == train["canonical_epoch_s"] / ours["epoch_s"] > 0
        assert ours["fraction_of_bound"] == ours["bound_epoch_s"] / ours["epoch_s"]
        assert (evaluation[precision]["images"], evaluation[precision]["k"]) == (20, 50)
        assert evaluation[precision]["samples_per_s"] > 0
        # Four steps on 500 digits: far from trained (~88 nats), about a uniform Bernoulli's 543 or below.
        (run,) = nll["runs"][precision]
        assert run["images"] == 50 and run["seed"] == 1 and 80 < run["fp32_eval_nll"] < 600
    assert nll["train_precision_effect"] == (nll["runs"]["bf16"][0]["fp32_eval_nll"]
                                             - nll["runs"]["fp32"][0]["fp32_eval_nll"])
    assert nll["train_precision_effect_per_seed"] == [nll["train_precision_effect"]]
    assert nll["train_precision_effect_stderr"] is None  # one seed: no spread to estimate it from
    compress = summary["compress"]
    assert compress["images"] == 150 and compress["encode_images_per_s"] > 0 and compress["decode_images_per_s"] > 0
    # The tiny 1-epoch model codes a digit in about a bit a pixel; 150 images also pay the 404 initial bytes.
    assert 0.5 < compress["bits_per_pixel"] < 1.5
    for row in ("| speed-up over the canonical epoch |", "| IS-NLL, fraction of the bound |", "bits-back",
                "default config trained in bf16"):
        assert row in done.stdout, row

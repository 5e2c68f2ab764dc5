"""The benchmark script runs end to end and reports consistent numbers (a smoke run: one short repetition;
its timings are not asserted against any target, only for being measured)."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_benchmark_runs_and_reports_every_measurement(mnist_raw, tiny_run, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "benchmark.py"), "--data", str(mnist_raw),
                           "--device", "cpu", "--repeats", "1", "--epochs", "1", "--eval-images", "20",
                           "--eval-k", "50", "--model", str(tiny_run / "models/vae.safetensors"),
                           "--compress-images", "150", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    train, evaluation = summary["train"], summary["eval"]
    assert summary["matmul_peak_gflops"] > 0
    assert train["speedup"] == train["canonical_epoch_s"] / train["ours_epoch_s"] > 0
    assert train["ours_over_bound"] == train["ours_epoch_s"] / train["bound_epoch_s"]
    assert (evaluation["images"], evaluation["k"]) == (20, 50) and evaluation["samples_per_s"] > 0
    compress = summary["compress"]
    assert compress["images"] == 150 and compress["encode_images_per_s"] > 0 and compress["decode_images_per_s"] > 0
    # The tiny 1-epoch model codes a digit in about a bit a pixel; 150 images also pay the 404 initial bytes.
    assert 0.5 < compress["bits_per_pixel"] < 1.5
    assert "| speed-up |" in done.stdout and "| IS-NLL time / bound |" in done.stdout and "bits-back" in done.stdout

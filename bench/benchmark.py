"""Benchmark: the canonical VAE recipe vs this pipeline's training and evaluation, against the hardware bound.

    python bench/benchmark.py                       # after `dvc repro download` (reads data/raw)
    python bench/benchmark.py --only eval --repeats 1 --eval-images 10000   # IS-NLL, full test set, k=5000
    python bench/benchmark.py --only compress       # bits-back coding speed with models/vae.safetensors

Every measurement runs in its own child process (so each peak RSS is its own), and the repetitions
interleave them (peak, canonical, ours, evaluation, then again), so a machine that slows down for a
while slows all of them alike. Medians are reported, as JSON (stdout and --out) and a markdown table.

Arithmetic bounds use the matrix-multiply peak measured in the same run:
- training: 6 x parameters x images floating-point operations per epoch (forward 2, backward 4);
- IS evaluation: 2 x decoder parameters per (image, sample), plus the encoder once per image.
Compression is timed with the trained model (`--model`): the compress stage's coder, encode and decode.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from vaepipe.artifacts import file_sha256  # noqa: E402
from vaepipe.compression import decode_file, encode_file  # noqa: E402
from vaepipe.data import binarized_once, load_split  # noqa: E402
from vaepipe.errors import PipelineError  # noqa: E402
from vaepipe.evaluation import likelihood_bounds  # noqa: E402
from vaepipe.model import VAE, VAEConfig, load_model  # noqa: E402
from vaepipe.params import TrainParams  # noqa: E402
from vaepipe.runtime import generator, make_deterministic, select_device  # noqa: E402
from vaepipe.training import Trainer  # noqa: E402

CANONICAL = VAEConfig(arch="mlp", latent_dim=20, hidden=(400,))
BATCH_SIZE = 128
MATMUL_SIZE = 2048
SEED = 1
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure_matmul_peak(device: torch.device) -> dict:
    """float32 GFLOP/s of large square products: the most this device's arithmetic can do."""
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device) for _ in range(2))
    products = 10
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        products = 200
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(products):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"gflops": products * 2 * MATMUL_SIZE**3 / (time.perf_counter() - start) / 1e9}


def timed_epochs(run_epoch, epochs: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure_canonical(data_dir: Path, device: torch.device, epochs: int) -> dict:
    import canonical

    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory() as root:
        # torchvision's MNIST reads <root>/MNIST/raw/<idx files>: link the pipeline's copies there.
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in IDX_FILES:
            (raw / name).symlink_to((data_dir / name).resolve())
        loader = canonical.train_loader(root, BATCH_SIZE)
        model = canonical.CanonicalVAE().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = timed_epochs(lambda: canonical.train_epoch(model, optimizer, loader, device), epochs, device)
    return {"epoch_s": times[-1], "images": len(loader.dataset), "parameters": parameter_count(model)}


def measure_ours(data_dir: Path, device: torch.device, epochs: int) -> dict:
    """Our Trainer on the canonical model, batch size and grey targets (no binarisation), all 60,000 images."""
    make_deterministic(SEED)
    images, _ = load_split(data_dir, "train")
    params = TrainParams(arch="mlp", hidden=CANONICAL.hidden, prior="normal", prior_components=1, objective="elbo",
                         samples=1, epochs=epochs, batch_size=BATCH_SIZE, lr=1e-3, lr_schedule="constant", beta=1.0,
                         kl_warmup=0.0, binarize="none", val_size=1, train_subset=0, keep="last", patience=0)
    model = VAE(CANONICAL).to(device)
    trainer = Trainer(model, images.to(device), params, SEED)
    # The first epoch includes compiling the fused loss kernel; the last one is the steady state.
    times = timed_epochs(trainer.run_epoch, epochs, device)
    return {"epoch_s": times[-1], "first_epoch_s": times[0], "images": len(images),
            "parameters": parameter_count(model)}


def measure_eval(data_dir: Path, device: torch.device, n_images: int, k: int) -> dict:
    """The importance-sampled NLL of the evaluate stage, on an untrained canonical-size model."""
    make_deterministic(SEED)
    images, _ = load_split(data_dir, "test")
    x = binarized_once(images[:n_images], "dynamic").to(device)
    model = VAE(CANONICAL).to(device)
    likelihood_bounds(model, x[:8], k=64, gen=generator(device, SEED))  # compile the fused kernel first
    start = time.perf_counter()
    likelihood_bounds(model, x, k, generator(device, SEED))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    flop = 2 * (len(x) * k * parameter_count(model.decoder) + len(x) * parameter_count(model.encoder))
    return {"seconds": seconds, "images": len(x), "k": k, "flop": flop}


def measure_compress(data_dir: Path, model_path: str, n_images: int) -> dict:
    """Bits-back encode and decode of the binarised test images, as the compress stage runs them (CPU)."""
    make_deterministic(SEED)
    images, _ = load_split(data_dir, "test")
    x = binarized_once(images[:n_images], "dynamic").to(torch.uint8)
    model, model_sha256 = load_model(model_path, torch.device("cpu")), file_sha256(model_path)
    start = time.perf_counter()
    data = encode_file(x, model, model_sha256, precision=8, batch_size=100, extra_header={})
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decode_file(data, "benchmark", model, model_path, model_sha256)
    return {"images": len(x), "encode_s": encode_s, "decode_s": time.perf_counter() - start,
            "bits_per_pixel": 8 * len(data) / x.numel()}


def worker(args: argparse.Namespace) -> None:
    device = select_device(args.device)
    data_dir = Path(args.data)
    if args.worker == "peak":
        result = measure_matmul_peak(device)
    elif args.worker == "canonical":
        result = measure_canonical(data_dir, device, args.epochs)
    elif args.worker == "ours":
        result = measure_ours(data_dir, device, args.epochs)
    elif args.worker == "compress":
        result = measure_compress(data_dir, args.model, args.compress_images)
    else:
        result = measure_eval(data_dir, device, args.eval_images, args.eval_k)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_worker(args: argparse.Namespace, name: str) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--data", args.data, "--device", args.device,
               "--epochs", str(args.epochs), "--eval-images", str(args.eval_images), "--eval-k", str(args.eval_k),
               "--model", args.model, "--compress-images", str(args.compress_images)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: benchmark worker `{name}` failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine(device: torch.device) -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "date": datetime.date.today().isoformat()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def summarise(runs: list[dict[str, dict]], device: torch.device) -> dict:
    def median(section: str, key: str) -> float:
        return statistics.median(run[section][key] for run in runs)

    peak = median("peak", "gflops")
    summary = {"machine": machine(device), "repeats": len(runs), "matmul_peak_gflops": peak, "raw": runs}
    if "ours" in runs[0]:
        summary["train"] = train_summary(runs, median, peak)
    if "eval" in runs[0]:
        summary["eval"] = eval_summary(runs, median, peak)
    if "compress" in runs[0]:
        n = runs[0]["compress"]["images"]
        summary["compress"] = {"images": n, "encode_images_per_s": n / median("compress", "encode_s"),
                               "decode_images_per_s": n / median("compress", "decode_s"),
                               "bits_per_pixel": runs[0]["compress"]["bits_per_pixel"],
                               "peak_rss_mib": median("compress", "peak_rss_mib")}
    return summary


def train_summary(runs, median, peak: float) -> dict:
    train_work = 6 * runs[0]["ours"]["parameters"] * runs[0]["ours"]["images"]
    train_bound = train_work / (peak * 1e9)
    canonical, ours = median("canonical", "epoch_s"), median("ours", "epoch_s")
    return {
        "canonical_epoch_s": canonical,
        "ours_epoch_s": ours,
        "ours_first_epoch_s": median("ours", "first_epoch_s"),
        "speedup": canonical / ours,
        "work_gflop": train_work / 1e9,
        "bound_epoch_s": train_bound,
        "ours_over_bound": ours / train_bound,
        "canonical_peak_rss_mib": median("canonical", "peak_rss_mib"),
        "ours_peak_rss_mib": median("ours", "peak_rss_mib"),
    }


def eval_summary(runs, median, peak: float) -> dict:
    ev = runs[0]["eval"]
    eval_seconds = median("eval", "seconds")
    eval_bound = ev["flop"] / (peak * 1e9)
    return {
        "images": ev["images"], "k": ev["k"],
        "seconds": eval_seconds,
        "samples_per_s": ev["images"] * ev["k"] / eval_seconds,
        "bound_samples_per_s": ev["images"] * ev["k"] / eval_bound,
        "over_bound": eval_seconds / eval_bound,
        "peak_rss_mib": median("eval", "peak_rss_mib"),
    }


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = [
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), device {m['device']}, "
        f"{m['date']}; median of {summary['repeats']} repetitions",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| matmul peak ({MATMUL_SIZE}² float32) | {summary['matmul_peak_gflops']:.1f} GFLOP/s |",
    ]
    if "train" in summary:
        t = summary["train"]
        lines += [
            f"| canonical recipe, epoch (60,000 images, batch {BATCH_SIZE}) | {t['canonical_epoch_s']:.2f} s |",
            f"| ours, same model/batch/grey targets, epoch | {t['ours_epoch_s']:.2f} s |",
            f"| speed-up | {t['speedup']:.2f}× |",
            f"| arithmetic bound ({t['work_gflop']:.0f} GFLOP at peak) | {t['bound_epoch_s']:.2f} s |",
            f"| ours / bound | {t['ours_over_bound']:.2f}× |",
            f"| peak RSS: canonical / ours | {t['canonical_peak_rss_mib']:.0f} / {t['ours_peak_rss_mib']:.0f} MiB |",
        ]
    if "eval" in summary:
        e = summary["eval"]
        lines += [
            f"| IS-NLL, {e['images']} images × k={e['k']} | {e['seconds']:.1f} s, "
            f"{e['samples_per_s'] / 1e3:.0f}k samples/s |",
            f"| IS-NLL bound | {e['bound_samples_per_s'] / 1e3:.0f}k samples/s |",
            f"| IS-NLL time / bound | {e['over_bound']:.2f}× |",
            f"| peak RSS: IS-NLL | {e['peak_rss_mib']:.0f} MiB |",
        ]
    if "compress" in summary:
        c = summary["compress"]
        lines += [
            f"| bits-back coding, {c['images']} test images ({c['bits_per_pixel']:.4f} bits/pixel): encode / decode "
            f"| {c['encode_images_per_s']:,.0f} / {c['decode_images_per_s']:,.0f} images/s |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "raw"), help="decompressed MNIST IDX files")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training measurement; the last is timed")
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "vae.safetensors"),
                        help="the trained VAE the compression is timed with (default: the pipeline's)")
    parser.add_argument("--compress-images", type=int, default=10000)
    parser.add_argument("--only", choices=("train", "eval", "compress"), help="measure only this")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", choices=("peak", "canonical", "ours", "eval", "compress"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        try:
            worker(args)
        except PipelineError as exc:
            sys.exit(f"error: {exc}")
        return
    for name in IDX_FILES:
        if not (Path(args.data) / name).is_file():
            sys.exit(f"error: {Path(args.data) / name} is missing; run `dvc repro download` first")
    if min(args.repeats, args.epochs, args.eval_images, args.eval_k, args.compress_images) < 1:
        sys.exit("error: --repeats, --epochs, --eval-images, --eval-k and --compress-images must be >= 1")
    if args.only in (None, "compress") and not Path(args.model).is_file():
        sys.exit(f"error: {args.model} is missing; run `dvc repro train` first (or leave compression out with --only)")

    runs = []
    for repeat in range(1, args.repeats + 1):
        names = ["peak", *{None: ("canonical", "ours", "eval", "compress"), "train": ("canonical", "ours"),
                           "eval": ("eval",), "compress": ("compress",)}[args.only]]
        run = {name: run_worker(args, name) for name in names}
        runs.append(run)
        print(f"repeat {repeat}/{args.repeats}: " + ", ".join(f"{name} {json.dumps(result)}"
                                                              for name, result in run.items()), file=sys.stderr)
    summary = summarise(runs, select_device(args.device))
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(markdown(summary))


if __name__ == "__main__":
    main()

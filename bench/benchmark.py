"""Benchmark: the canonical VAE recipe vs this pipeline's training and evaluation, in float32 and in bfloat16,
against the hardware bound of each.

    python bench/benchmark.py                       # after `dvc repro download` (reads data/raw)
    python bench/benchmark.py --only train          # epoch times only
    python bench/benchmark.py --only nll            # the default configuration trained both ways, its test NLL
    python bench/benchmark.py --only eval --repeats 1 --eval-images 10000   # IS-NLL, full test set, k=5000
    python bench/benchmark.py --only compress       # bits-back coding speed with models/vae.safetensors
    python bench/benchmark.py --only lossy          # the lossy codec's speed (the lossy stage's first step)

Every measurement runs in its own child process (so each peak RSS is its own), and the repetitions
interleave them (peaks, canonical, ours in fp32, ours in bf16, evaluation in both, then again), so a
machine that slows down for a while slows all of them alike. Medians are reported, as JSON (stdout and
--out) and a markdown table.

Arithmetic bounds use the matrix-multiply peaks (float32 and bfloat16) measured in the same run:
- training: 6 x parameters x images floating-point operations per epoch (forward 2, backward 4);
- IS evaluation: 2 x decoder parameters per (image, sample), plus the encoder once per image.
The NLL measurement trains the default configuration of params.yaml in each precision, for params.yaml's seed
and the four after it (--nll-seeds), and scores each model on the test set (k = 1000, all 10,000 images) with
float32 and with bf16 network passes; it reports the paired differences and their mean's standard error.
Compression is timed with the trained model (`--model`): the compress stage's coder, encode and decode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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

from machine import describe  # noqa: E402
from vaepipe.codecs import lossy  # noqa: E402
from vaepipe.codecs.bitsback import decode_file, encode_file  # noqa: E402
from vaepipe.core.artifacts import file_sha256  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import TrainParams, load_params  # noqa: E402
from vaepipe.core.runtime import (autocast, compiling_if_worth_it, generator, make_deterministic,  # noqa: E402
                                  select_device)
from vaepipe.data.datasets import binarize_set, load_split  # noqa: E402
from vaepipe.vae.evaluation import likelihood_bounds  # noqa: E402
from vaepipe.vae.model import VAE, VAEConfig, load_model  # noqa: E402
from vaepipe.vae.training import Trainer, split_train_val, train  # noqa: E402

CANONICAL = VAEConfig(arch="mlp", latent_dim=20, hidden=(400,))
BATCH_SIZE = 128
MATMUL_SIZE = 2048
SEED = 1
# The seed alone moves the default model's test NLL by ~0.4 nats, so one seed cannot resolve the 0.15 nats bf16
# training may cost: the NLL measurement compares the precisions seed by seed, over this many by default.
NLL_SEEDS = 5
PRECISIONS = ("fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure_matmul_peak(device: torch.device) -> dict:
    """GFLOP/s of large square products in float32 and in bfloat16: the most this device's arithmetic can do."""
    result = {}
    for precision in PRECISIONS:
        a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=DTYPES[precision]) for _ in range(2))
        products = 200 if device.type == "cuda" else 10 * (4 if precision == "bf16" else 1)
        for _ in range(2):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(products):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        result[f"{precision}_gflops"] = products * 2 * MATMUL_SIZE**3 / (time.perf_counter() - start) / 1e9
    return result


def timed_epochs(run_epoch, epochs: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure_canonical(data_dir: Path, device: torch.device, epochs: int, n_images: int) -> dict:
    import canonical

    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory() as root:
        # torchvision's MNIST reads <root>/MNIST/raw/<idx files>: link the pipeline's copies there.
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in IDX_FILES:
            (raw / name).symlink_to((data_dir / name).resolve())
        loader = canonical.train_loader(root, BATCH_SIZE, n_images)
        model = canonical.CanonicalVAE().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = timed_epochs(lambda: canonical.train_epoch(model, optimizer, loader, device), epochs, device)
    return {"epoch_s": times[-1], "images": len(loader.dataset), "parameters": parameter_count(model)}


def measure_ours(data_dir: Path, device: torch.device, epochs: int, n_images: int, precision: str) -> dict:
    """Our Trainer on the canonical model, batch size and grey targets (no binarisation), the same images."""
    make_deterministic(SEED)
    images = load_split(data_dir, "train")[0][:n_images or None]
    params = TrainParams(arch="mlp", hidden=CANONICAL.hidden, prior="normal", prior_components=1, objective="elbo",
                         samples=1, epochs=epochs, batch_size=BATCH_SIZE, lr=1e-3, lr_schedule="constant", beta=1.0,
                         kl_warmup=0.0, binarize="none", val_size=1, train_subset=0, keep="last", patience=0,
                         precision=precision)
    model = VAE(CANONICAL).to(device)
    trainer = Trainer(model, images.to(device), params, SEED)
    # Compiled where the train stage would compile so much work (all the images: yes; a smoke test's few: no). The
    # first epoch then includes compiling the fused loss kernel; the last one is the steady state.
    with compiling_if_worth_it(len(images) * epochs):
        times = timed_epochs(trainer.run_epoch, epochs, device)
    return {"epoch_s": times[-1], "first_epoch_s": times[0], "images": len(images),
            "parameters": parameter_count(model)}


def measure_eval(data_dir: Path, device: torch.device, n_images: int, k: int, precision: str) -> dict:
    """The importance-sampled NLL of the evaluate stage, on an untrained canonical-size model."""
    make_deterministic(SEED)
    images, _ = load_split(data_dir, "test")
    x = binarize_set(images[:n_images], "dynamic").to(device)
    model = VAE(CANONICAL).to(device)
    with autocast(DTYPES[precision], device):
        likelihood_bounds(model, x[:8], k=64, gen=generator(device, SEED))  # compile the fused kernel first
        start = time.perf_counter()
        likelihood_bounds(model, x, k, generator(device, SEED))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    flop = 2 * (len(x) * k * parameter_count(model.decoder) + len(x) * parameter_count(model.encoder))
    return {"seconds": seconds, "images": len(x), "k": k, "flop": flop}


def measure_nll(data_dir: Path, device: torch.device, precision: str, args: argparse.Namespace) -> dict:
    """The default configuration (params.yaml) trained as the train stage trains it, its matrix multiplies in
    `precision`; then its test NLL as the evaluate stage computes it, with float32 and with bf16 passes."""
    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml"), seed=args.nll_seed)
    changes = {"precision": precision, "train_subset": args.nll_train_subset}
    if args.nll_epochs:
        changes["epochs"] = args.nll_epochs
    train_params = dataclasses.replace(params.train, **changes)
    make_deterministic(params.seed)
    images, _ = load_split(data_dir, "train")
    train_x, val_x = split_train_val(images, train_params.val_size, params.seed, train_params.train_subset)
    val_x = binarize_set(val_x, train_params.binarize)
    model = VAE(VAEConfig.from_params(params.latent_dim, train_params)).to(device)
    start = time.perf_counter()
    train(model, train_x.to(device), val_x.to(device), train_params, params.seed, lambda *stats: None)
    result = {"seed": params.seed, "train_s": time.perf_counter() - start, "epochs": train_params.epochs,
              "k": args.nll_k}
    test, _ = load_split(data_dir, "test")
    x = binarize_set(test[:args.nll_images or len(test)], train_params.binarize).to(device)
    result["images"] = len(x)
    for eval_precision in PRECISIONS:
        start = time.perf_counter()
        with autocast(DTYPES[eval_precision], device):
            bounds = likelihood_bounds(model, x, args.nll_k, generator(device, params.seed))
        result[f"{eval_precision}_eval_s"] = time.perf_counter() - start
        result[f"{eval_precision}_eval_nll"] = bounds.nll.mean().item()
    return result


def measure_compress(data_dir: Path, model_path: str, n_images: int) -> dict:
    """Bits-back encode and decode of the binarised test images, as the compress stage runs them (CPU)."""
    make_deterministic(SEED)
    images, _ = load_split(data_dir, "test")
    x = binarize_set(images[:n_images], "dynamic").to(torch.uint8)
    model, model_sha256 = load_model(model_path, torch.device("cpu")), file_sha256(model_path)
    start = time.perf_counter()
    data = encode_file(x, model, model_sha256, precision=8, batch_size=100, extra_header={})
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decode_file(data, "benchmark", model, model_path, model_sha256)
    return {"images": len(x), "encode_s": encode_s, "decode_s": time.perf_counter() - start,
            "bits_per_pixel": 8 * len(data) / x.numel()}


def measure_lossy(data_dir: Path, model_path: str, n_images: int) -> dict:
    """The lossy codec on the grey test images at the lossy stage's first step, as the stage runs it (CPU): encode
    (encoder, quantiser, ANS) and decode (ANS, decoder) of one file."""
    make_deterministic(SEED)
    images = load_split(data_dir, "test")[0][:n_images].reshape(-1, 784)
    step, entropy_model = load_params(REPO_ROOT / "params.yaml").lossy.steps[0], "auto"
    model, model_sha256 = load_model(model_path, torch.device("cpu")), file_sha256(model_path)
    start = time.perf_counter()
    data, _ = lossy.encode_file(images, model, model_sha256, step, {}, entropy_model)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    lossy.decode_file(data, "benchmark", model, model_path, model_sha256)
    return {"images": len(images), "step": step, "encode_s": encode_s, "decode_s": time.perf_counter() - start,
            "bytes_per_image": len(data) / len(images)}


def worker(args: argparse.Namespace) -> None:
    device = select_device(args.device)
    data_dir = Path(args.data)
    name, _, precision = args.worker.partition("-")
    if name == "peak":
        result = measure_matmul_peak(device)
    elif name == "canonical":
        result = measure_canonical(data_dir, device, args.epochs, args.train_images)
    elif name == "ours":
        result = measure_ours(data_dir, device, args.epochs, args.train_images, precision)
    elif name == "compress":
        result = measure_compress(data_dir, args.model, args.compress_images)
    elif name == "lossy":
        result = measure_lossy(data_dir, args.model, args.compress_images)
    elif name == "nll":
        result = measure_nll(data_dir, device, precision, args)
    else:
        result = measure_eval(data_dir, device, args.eval_images, args.eval_k, precision)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_worker(args: argparse.Namespace, name: str, *extra: str) -> dict:
    command = [sys.executable, __file__, "--worker", name, *args.passed, *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: benchmark worker `{name}` failed: {done.stderr.strip().splitlines()[-1]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name} {' '.join(extra)}: {json.dumps(result)}", file=sys.stderr, flush=True)  # progress, as it comes
    return result


def summarise(runs: list[dict[str, dict]], nll: dict[str, dict], device: torch.device) -> dict:
    def median(section: str, key: str) -> float:
        return statistics.median(run[section][key] for run in runs)

    peaks = {precision: median("peak", f"{precision}_gflops") for precision in PRECISIONS}
    summary = {"machine": describe(device), "repeats": len(runs), "matmul_peak_gflops": peaks, "raw": runs}
    if "canonical" in runs[0]:
        summary["train"] = train_summary(runs, median, peaks)
    if "eval-fp32" in runs[0]:
        summary["eval"] = {precision: eval_summary(runs[0][f"eval-{precision}"], median, f"eval-{precision}",
                                                   peaks[precision]) for precision in PRECISIONS}
    if "compress" in runs[0]:
        n = runs[0]["compress"]["images"]
        summary["compress"] = {"images": n, "encode_images_per_s": n / median("compress", "encode_s"),
                               "decode_images_per_s": n / median("compress", "decode_s"),
                               "bits_per_pixel": runs[0]["compress"]["bits_per_pixel"],
                               "peak_rss_mib": median("compress", "peak_rss_mib")}
    if "lossy" in runs[0]:
        n = runs[0]["lossy"]["images"]
        summary["lossy"] = {"images": n, "step": runs[0]["lossy"]["step"],
                            "encode_images_per_s": n / median("lossy", "encode_s"),
                            "decode_images_per_s": n / median("lossy", "decode_s"),
                            "both_images_per_s": n / (median("lossy", "encode_s") + median("lossy", "decode_s")),
                            "bytes_per_image": runs[0]["lossy"]["bytes_per_image"],
                            "peak_rss_mib": median("lossy", "peak_rss_mib")}
    if nll:
        # Per training precision: the seeds' mean test NLL with float32 passes, and what bf16 passes change.
        means = {p: {key: statistics.mean(r[key] for r in results) for key in ("fp32_eval_nll", "bf16_eval_nll")}
                 for p, results in nll.items()}
        # Seed by seed (the same seed trains both ways): the paired differences, and their mean's standard error.
        paired = [bf16["fp32_eval_nll"] - fp32["fp32_eval_nll"] for fp32, bf16 in zip(nll["fp32"], nll["bf16"])]
        summary["nll"] = {"runs": nll, "mean": means,
                          "train_precision_effect": means["bf16"]["fp32_eval_nll"] - means["fp32"]["fp32_eval_nll"],
                          "train_precision_effect_per_seed": paired,
                          "train_precision_effect_stderr": (statistics.stdev(paired) / len(paired) ** 0.5
                                                            if len(paired) > 1 else None),
                          "eval_precision_effect": {p: max((r["bf16_eval_nll"] - r["fp32_eval_nll"] for r in results),
                                                           key=abs) for p, results in nll.items()}}
    return summary


def train_summary(runs, median, peaks: dict[str, float]) -> dict:
    """Per precision: the epoch (median), its speed-up over the canonical recipe's epoch, and the share of the
    arithmetic bound at that precision's matrix-multiply peak that it reaches."""
    images = runs[0]["ours-fp32"]["images"]
    work = 6 * runs[0]["ours-fp32"]["parameters"] * images
    canonical = median("canonical", "epoch_s")
    summary = {"images": images, "canonical_epoch_s": canonical,
               "canonical_peak_rss_mib": median("canonical", "peak_rss_mib"), "work_gflop": work / 1e9}
    for precision in PRECISIONS:
        section = f"ours-{precision}"
        epoch, bound = median(section, "epoch_s"), work / (peaks[precision] * 1e9)
        # Speed-ups within each repetition too: how steady the ratio is on a machine whose speed drifts.
        per_repeat = [run["canonical"]["epoch_s"] / run[section]["epoch_s"] for run in runs]
        summary[precision] = {"epoch_s": epoch, "first_epoch_s": median(section, "first_epoch_s"),
                              "speedup": canonical / epoch, "speedup_per_repeat": per_repeat,
                              "bound_epoch_s": bound, "fraction_of_bound": bound / epoch,
                              "peak_rss_mib": median(section, "peak_rss_mib")}
    return summary


def eval_summary(first: dict, median, section: str, peak: float) -> dict:
    eval_seconds = median(section, "seconds")
    eval_bound = first["flop"] / (peak * 1e9)
    return {
        "images": first["images"], "k": first["k"],
        "seconds": eval_seconds,
        "samples_per_s": first["images"] * first["k"] / eval_seconds,
        "bound_samples_per_s": first["images"] * first["k"] / eval_bound,
        "fraction_of_bound": eval_bound / eval_seconds,
        "peak_rss_mib": median(section, "peak_rss_mib"),
    }


def markdown(summary: dict) -> str:
    m, peaks = summary["machine"], summary["matmul_peak_gflops"]
    lines = [
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), device {m['device']}, "
        f"{m['date']}; median of {summary['repeats']} repetitions",
        "",
        "| measurement | float32 | bfloat16 |",
        "| --- | --- | --- |",
        f"| matmul peak ({MATMUL_SIZE}²) | {peaks['fp32']:.1f} GFLOP/s | {peaks['bf16']:.1f} GFLOP/s |",
    ]

    def row(name: str, cell) -> str:
        return f"| {name} | {cell('fp32')} | {cell('bf16')} |"

    if "train" in summary:
        t = summary["train"]
        lines += [
            f"| canonical recipe, epoch ({t['images']:,} images, batch {BATCH_SIZE}) | {t['canonical_epoch_s']:.2f} s | |",
            row("ours, same model/batch/grey targets, epoch", lambda p: f"{t[p]['epoch_s']:.2f} s"),
            row("speed-up over the canonical epoch", lambda p: f"{t[p]['speedup']:.2f}×"),
            row("speed-up, range over the repetitions",
                lambda p: f"{min(t[p]['speedup_per_repeat']):.2f}–{max(t[p]['speedup_per_repeat']):.2f}×"),
            row(f"arithmetic bound ({t['work_gflop']:.0f} GFLOP at that peak)",
                lambda p: f"{t[p]['bound_epoch_s']:.2f} s"),
            row("fraction of the bound reached", lambda p: f"{t[p]['fraction_of_bound']:.0%}"),
            row(f"peak RSS (canonical: {t['canonical_peak_rss_mib']:.0f} MiB)",
                lambda p: f"{t[p]['peak_rss_mib']:.0f} MiB"),
        ]
    if "eval" in summary:
        e = summary["eval"]
        lines += [
            row(f"IS-NLL, {e['fp32']['images']} images × k={e['fp32']['k']}",
                lambda p: f"{e[p]['seconds']:.1f} s, {e[p]['samples_per_s'] / 1e3:.0f}k samples/s"),
            row("IS-NLL, fraction of the bound", lambda p: f"{e[p]['fraction_of_bound']:.0%}"),
            row("peak RSS: IS-NLL", lambda p: f"{e[p]['peak_rss_mib']:.0f} MiB"),
        ]
    if "nll" in summary:
        for train_precision, results in summary["nll"]["runs"].items():
            for r in results:
                lines.append(row(f"default config trained in {train_precision}, seed {r['seed']} "
                                 f"({r['epochs']} epochs, {r['train_s']:.0f} s): test NLL, k={r['k']}, "
                                 f"{r['images']} images, passes in",
                                 lambda p: f"{r[f'{p}_eval_nll']:.3f} nats ({r[f'{p}_eval_s']:.0f} s)"))
    if "compress" in summary:
        c = summary["compress"]
        lines += [
            f"| bits-back coding, {c['images']} test images ({c['bits_per_pixel']:.4f} bits/pixel): encode / decode "
            f"| {c['encode_images_per_s']:,.0f} / {c['decode_images_per_s']:,.0f} images/s | |",
        ]
    if "lossy" in summary:
        c = summary["lossy"]
        lines += [
            f"| lossy codec, {c['images']} grey test images at step {c['step']:g} ({c['bytes_per_image']:.2f} "
            f"bytes/image): encode / decode / both | {c['encode_images_per_s']:,.0f} / {c['decode_images_per_s']:,.0f} "
            f"/ {c['both_images_per_s']:,.0f} images/s | |",
        ]
    if "nll" in summary:
        n = summary["nll"]
        stderr = n["train_precision_effect_stderr"]
        lines += ["", f"Test NLL, trained in bf16 minus trained in fp32 (fp32 passes, mean over the seeds): "
                      f"{n['train_precision_effect']:+.3f} nats"
                      + (f" ± {stderr:.3f} (standard error of the paired differences "
                         + ", ".join(f"{d:+.3f}" for d in n["train_precision_effect_per_seed"]) + ")" if stderr else "")
                      + "; bf16 passes minus fp32 passes (the largest over "
                      "the seeds): " + ", ".join(f"{effect:+.4f} nats ({p}-trained)"
                                                 for p, effect in n["eval_precision_effect"].items())]
    return "\n".join(lines)


MEASUREMENTS = {None: ("canonical", "ours-fp32", "ours-bf16", "eval-fp32", "eval-bf16", "compress", "lossy"),
                "train": ("canonical", "ours-fp32", "ours-bf16"), "eval": ("eval-fp32", "eval-bf16"),
                "compress": ("compress",), "lossy": ("lossy",), "nll": ()}
WORKERS = ("peak", "canonical", "compress", "lossy", *(f"{name}-{p}" for name in ("ours", "eval", "nll") for p in PRECISIONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "raw"), help="decompressed MNIST IDX files")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training measurement; the last is timed")
    parser.add_argument("--train-images", type=int, default=0,
                        help="training measurement: the first this many training images (0: all 60,000)")
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "vae.safetensors"),
                        help="the trained VAE the compression is timed with (default: the pipeline's)")
    parser.add_argument("--compress-images", type=int, default=10000)
    parser.add_argument("--nll-epochs", type=int, default=0, help="NLL measurement: epochs (0: params.yaml's)")
    parser.add_argument("--nll-train-subset", type=int, default=0, help="NLL measurement: training images (0: all)")
    parser.add_argument("--nll-images", type=int, default=0, help="NLL measurement: test images (0: all 10,000)")
    parser.add_argument("--nll-k", type=int, default=1000, help="NLL measurement: importance samples an image")
    parser.add_argument("--nll-seeds", default="", help="NLL measurement: comma-separated seeds, each trained in "
                        f"both precisions (default: params.yaml's seed and the {NLL_SEEDS - 1} after it)")
    parser.add_argument("--nll-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("train", "eval", "compress", "lossy", "nll"), help="measure only this")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        try:
            worker(args)
        except PipelineError as exc:
            sys.exit(f"error: {exc}")
        return
    args.passed = [arg for arg in sys.argv[1:] if arg not in ("--out", args.out)]
    for name in IDX_FILES:
        if not (Path(args.data) / name).is_file():
            sys.exit(f"error: {Path(args.data) / name} is missing; run `dvc repro download` first")
    if min(args.repeats, args.epochs, args.eval_images, args.eval_k, args.compress_images, args.nll_k) < 1:
        sys.exit("error: --repeats, --epochs, --eval-images, --eval-k, --compress-images and --nll-k must be >= 1")
    if min(args.train_images, args.nll_epochs, args.nll_train_subset, args.nll_images) < 0:
        sys.exit("error: --train-images, --nll-epochs, --nll-train-subset and --nll-images must be >= 0")
    if args.only in (None, "compress", "lossy") and not Path(args.model).is_file():
        sys.exit(f"error: {args.model} is missing; run `dvc repro train` first (or leave compression out with --only)")

    runs = []
    for repeat in range(1, args.repeats + 1):
        run = {name: run_worker(args, name) for name in ("peak", *MEASUREMENTS[args.only])}
        runs.append(run)
    nll = {}
    if args.only in (None, "nll"):
        first = load_params(REPO_ROOT / "params.yaml").seed
        seeds = [int(seed) for seed in args.nll_seeds.split(",")] if args.nll_seeds else list(range(first, first + NLL_SEEDS))
        nll = {precision: [run_worker(args, f"nll-{precision}", "--nll-seed", str(seed)) for seed in seeds]
               for precision in PRECISIONS}
    summary = summarise(runs, nll, select_device(args.device))
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(markdown(summary))


if __name__ == "__main__":
    main()

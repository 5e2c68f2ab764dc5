"""Stage `compress`: the binarised test set (the evaluate stage's fixed binarisation) compressed into one
file with bits-back ANS coding (vaepipe.codecs.bitsback), decoded again and checked bit for bit; its rate
against the model's -ELBO and against generic lossless formats on the same images. The file decompresses
with `vaepipe-decompress` into a .npy array [N, 28, 28] of 0/1 bytes.

    dvc repro compress
    dvc exp run -S compress.latent_precision=10
    vaepipe-decompress data/compressed/test.vbb -o test.npy

Speeds (images/s) are printed, not written to the metrics: they differ run to run, and the metrics and
dvc.lock of a run are byte-identical to another run's (`bench/benchmark.py --only compress` records them).
"""

import time
from pathlib import Path

import torch

from vaepipe.codecs.baselines import baseline_sizes
from vaepipe.codecs.bitsback import decode_file, encode_file
from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, file_sha256, write_bytes, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import DataError
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE
from vaepipe.core.runtime import generator, make_deterministic, provenance, select_device
from vaepipe.data.datasets import binarize_set, load_split
from vaepipe.data.image_files import binary_images
from vaepipe.vae.evaluation import likelihood_bounds
from vaepipe.vae.model import load_model
from vaepipe.vae.objectives import nats_to_bits_per_dim

# Posterior samples per image for the -ELBO the rate is compared with. At 20 its mean over the test set moved by
# < 0.005 nats (1e-5 bits/pixel) between seeds, and took 1.2 s where 100 took 8.2.
ELBO_SAMPLES = 20


def main() -> None:
    params = load_params()
    cp = params.compress
    make_deterministic(params.seed)
    select_device(params.device)  # checks the param; the coder runs on the CPU (see vaepipe.codecs.bitsback)
    model = load_model(paths.VAE, torch.device("cpu"))
    model_sha256 = file_sha256(paths.VAE)
    images, _ = load_split(paths.RAW, "test")
    require_at_most("compress.test_subset", cp.test_subset, len(images), "the test set")
    binary = binarize_set(images[: cp.test_subset or len(images)], "dynamic").to(torch.uint8)
    x, layout = binary_images(Path(paths.COMPRESSED), binary.view(-1, IMAGE_SIDE, IMAGE_SIDE).numpy(), "npy")
    pixels = x.numel()

    start = time.perf_counter()
    data = encode_file(x, model, model_sha256, cp.latent_precision, cp.batch_size, {"array": layout})
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    header, decoded = decode_file(data, paths.COMPRESSED, model, paths.VAE, model_sha256)
    decode_s = time.perf_counter() - start
    if not torch.equal(decoded, x):
        raise DataError(f"{paths.COMPRESSED}: decoding did not give back the images bit for bit")

    with torch.no_grad():
        neg_elbo = likelihood_bounds(model, x.float(), ELBO_SAMPLES, generator(torch.device("cpu"), params.seed))
    neg_elbo_bpp = nats_to_bits_per_dim(neg_elbo.neg_elbo.mean().item(), IMAGE_PIXELS)
    total_bpp = 8 * len(data) / pixels
    net_bpp = (8 * len(data) - header["initial_bits"]) / pixels
    metrics = {"n_images": len(x), "total_bpp": total_bpp, "net_bpp": net_bpp, "initial_bits": header["initial_bits"],
               "file_bytes": len(data), "neg_elbo_bpp": neg_elbo_bpp,
               "total_gap_percent": 100 * (total_bpp / neg_elbo_bpp - 1), "net_gap_percent": 100 * (net_bpp / neg_elbo_bpp - 1),
               "baselines_bpp": {name: 8 * size / pixels for name, size in baseline_sizes(x.numpy()).items()},
               "run": provenance(torch.device("cpu"))}
    with all_or_nothing():
        write_bytes(paths.COMPRESSED, data)
        write_json(paths.metrics("compress"), metrics)
    print(f"{len(x)} images: {total_bpp:.4f} bits/pixel ({net_bpp:.4f} net of the initial bits), -ELBO "
          f"{neg_elbo_bpp:.4f}; encode {len(x) / encode_s:.0f} images/s, decode {len(x) / decode_s:.0f} images/s")


if __name__ == "__main__":
    run_stage(main)

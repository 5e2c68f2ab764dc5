"""Stage `lossy`: the VAE as a lossy codec (vaepipe.codecs.lossy) on the grey test digits, at each step of
`lossy.steps`: one file of all the images a step, decoded again and checked against the decoder applied in
PyTorch to the dequantised codes; its bytes an image (headers included, and the codes alone), PSNR, and the
judge's accuracy on the decoded digits against the originals'. The files decompress with `vaepipe-decompress`.

    dvc repro lossy
    dvc exp run -S lossy.steps=[0.5,0.75,1,1.5]
    vaepipe-compress digits.npy --step 0.75     # your own images

Speeds (images/s) are printed, not written to the metrics, which a re-run reproduces byte for byte.
"""

import time

import torch

from vaepipe.codecs.lossy import LatentQuantizer, decode_file, encode_file
from vaepipe.codecs.rate_distortion import make_point, payload_bytes
from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, file_sha256, write_bytes, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import DataError
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.runtime import make_deterministic, provenance, select_device
from vaepipe.data.datasets import load_split
from vaepipe.figures.plots import labelled_rows
from vaepipe.generation.judge import accuracy, load_judge
from vaepipe.vae.model import load_model

SHOWN = 12  # digits in the figure


def main() -> None:
    params = load_params()
    lp = params.lossy
    make_deterministic(params.seed)
    select_device(params.device)  # checks the param; the codec runs on the CPU, as vaepipe-compress does
    cpu = torch.device("cpu")
    model, model_sha256 = load_model(paths.VAE, cpu), file_sha256(paths.VAE)
    judge = load_judge(paths.JUDGE, params.dataset, cpu)
    images, labels = load_split(paths.RAW, "test")
    require_at_most("lossy.test_subset", lp.test_subset, len(images), "the test set")
    n = lp.test_subset or len(images)
    images, labels = images[:n].reshape(n, -1), labels[:n]

    files, points, rows = {}, [], {"original": images[:SHOWN]}
    for step in lp.steps:
        start = time.perf_counter()
        data, codes = encode_file(images, model, model_sha256, step, {}, lp.entropy_model)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        header, decoded_codes, decoded = decode_file(data, f"step {step:g}", model, paths.VAE, model_sha256)
        decode_s = time.perf_counter() - start
        with torch.no_grad():  # the decoder in PyTorch on the dequantised codes, in one call
            expected = torch.sigmoid(model.decode(codes.float() * LatentQuantizer(step).step))
        if not (torch.equal(decoded_codes, codes) and torch.equal(decoded, expected)):
            raise DataError(f"step {step:g}: decoding did not give the codes and the decoder's images back")
        point = make_point("vae", step, len(data), payload_bytes(data), decoded, images, labels, judge)
        points.append({**point, "entropy_model": "fitted" if header["entropy_model"] else "prior"})
        files[f"{paths.LOSSY}/test-step{step:g}.vlc"] = data
        rows[f"step {step:g}: {point['bytes_per_image']:.2f} bytes, accuracy {point['accuracy']:.3f}"] = decoded[:SHOWN]
        print(f"step {step:g}: {len(data):,} bytes, {point['bytes_per_image']:.2f} bytes/image "
              f"({point['payload_bytes_per_image']:.2f} of codes), PSNR {point['psnr_db']:.2f} dB, judge accuracy "
              f"{point['accuracy']:.4f}; encode {n / encode_s:,.0f} images/s, decode {n / decode_s:,.0f} images/s")
    metrics = {"n_images": n, "judge_accuracy_on_originals": accuracy(judge, images, labels), "steps": points,
               "run": provenance(cpu)}
    with all_or_nothing():
        for path, data in files.items():
            write_bytes(path, data)
        write_json(paths.metrics("lossy"), metrics)
        labelled_rows(rows, f"The VAE as a lossy codec: {SHOWN} test digits at each step", f"{paths.plots('lossy')}/rates.png")


if __name__ == "__main__":
    run_stage(main)

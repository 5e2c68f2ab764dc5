"""Stage `lossy`: the VAE as a lossy codec (vaepipe.lossy_compression) on the grey test digits, at each step of
`lossy.steps`: one file of all the images a step, decoded again and checked against the decoder applied in
PyTorch to the dequantised codes; its bytes an image (headers included, and the codes alone), PSNR, and the
judge's accuracy on the decoded digits against the originals'. The files decompress with `vaepipe-decompress`.

Speeds (images/s) are printed, not written to the metrics, which a re-run reproduces byte for byte.
"""

import time

import torch

from vaepipe.artifacts import all_or_nothing, file_sha256, write_bytes, write_json
from vaepipe.cli import run_stage
from vaepipe.data import load_split
from vaepipe.errors import DataError
from vaepipe.judge import accuracy, load_judge
from vaepipe.lossy_compression import LatentQuantizer, decode_file, encode_file
from vaepipe.model import load_model
from vaepipe.params import load_params, require_at_most
from vaepipe.plots import labelled_rows
from vaepipe.rate_distortion import make_point, payload_bytes
from vaepipe.runtime import make_deterministic, select_device

MODEL_PATH = "models/vae.safetensors"
JUDGE_PATH = "models/judge.safetensors"
METRICS_PATH = "metrics/lossy.json"
FIGURE_PATH = "plots/lossy/rates.png"
SHOWN = 12  # digits in the figure


def main() -> None:
    params = load_params()
    lp = params.lossy
    make_deterministic(params.seed)
    select_device(params.device)  # checks the param; the codec runs on the CPU, as vaepipe-compress does
    cpu = torch.device("cpu")
    model, model_sha256 = load_model(MODEL_PATH, cpu), file_sha256(MODEL_PATH)
    judge = load_judge(JUDGE_PATH, params.dataset, cpu)
    images, labels = load_split("data/raw", "test")
    require_at_most("lossy.test_subset", lp.test_subset, len(images), "the test set")
    n = lp.test_subset or len(images)
    images, labels = images[:n].reshape(n, -1), labels[:n]

    files, points, rows = {}, [], {"original": images[:SHOWN]}
    for step in lp.steps:
        start = time.perf_counter()
        data, codes = encode_file(images, model, model_sha256, step, {}, lp.entropy_model)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        header, decoded_codes, decoded = decode_file(data, f"step {step:g}", model, MODEL_PATH, model_sha256)
        decode_s = time.perf_counter() - start
        with torch.no_grad():  # the decoder in PyTorch on the dequantised codes, in one call
            expected = torch.sigmoid(model.decode(codes.float() * LatentQuantizer(step).step))
        if not (torch.equal(decoded_codes, codes) and torch.equal(decoded, expected)):
            raise DataError(f"step {step:g}: decoding did not give the codes and the decoder's images back")
        point = make_point("vae", step, len(data), payload_bytes(data), decoded, images, labels, judge)
        points.append({**point, "entropy_model": "fitted" if header["entropy_model"] else "prior"})
        files[f"data/compressed/lossy/test-step{step:g}.vlc"] = data
        rows[f"step {step:g}: {point['bytes_per_image']:.2f} bytes, accuracy {point['accuracy']:.3f}"] = decoded[:SHOWN]
        print(f"step {step:g}: {len(data):,} bytes, {point['bytes_per_image']:.2f} bytes/image "
              f"({point['payload_bytes_per_image']:.2f} of codes), PSNR {point['psnr_db']:.2f} dB, judge accuracy "
              f"{point['accuracy']:.4f}; encode {n / encode_s:,.0f} images/s, decode {n / decode_s:,.0f} images/s")
    metrics = {"n_images": n, "judge_accuracy_on_originals": accuracy(judge, images, labels), "steps": points}
    with all_or_nothing():
        for path, data in files.items():
            write_bytes(path, data)
        write_json(METRICS_PATH, metrics)
        labelled_rows(rows, f"The VAE as a lossy codec: {SHOWN} test digits at each step", FIGURE_PATH)


if __name__ == "__main__":
    run_stage(main)

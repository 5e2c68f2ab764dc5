"""One VAE of the study as a lossy codec: the test set compressed at every step of studies/ratedistortion/params.yaml
(vaepipe.codecs.lossy, on the CPU, from the saved model as vaepipe-compress would), decoded again, checked
exact, and judged; and the unquantised codes' reconstructions, the ceiling of any step. Writes
results/vae-beta-BETA.json, a point a step.

    python studies/ratedistortion/vae_codec.py 2      # after train_model.py 2 and `dvc repro judge`
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

import torch  # noqa: E402

from vaepipe.codecs.lossy import BATCH  # noqa: E402
from vaepipe.codecs.rate_distortion import mean_psnr, vae_points  # noqa: E402
from vaepipe.core.artifacts import file_sha256, write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.data.datasets import load_split  # noqa: E402
from vaepipe.generation.judge import accuracy, load_judge  # noqa: E402
from vaepipe.vae.codes import posterior_means  # noqa: E402
from vaepipe.vae.model import load_model  # noqa: E402
from ratedistortion_params import RateDistortionParams  # noqa: E402


def main() -> None:
    study = load_params(HERE / "params.yaml", RateDistortionParams)
    name, beta = study.beta_named(sys.argv, "vae_codec.py")
    model_path = HERE / f"models/beta-{name}.safetensors"
    model, model_sha256 = load_model(model_path, torch.device("cpu")), file_sha256(model_path)
    images, labels = load_split(REPO_ROOT / "data/raw", "test")
    judge = load_judge(REPO_ROOT / "models/judge.safetensors", load_params(REPO_ROOT / "params.yaml").dataset,
                       torch.device("cpu"))
    flat = images.view(len(images), -1)
    points = vae_points(f"vae-beta-{name}", model, model_sha256, flat, labels, judge, study.steps, study.entropy_model)
    with torch.no_grad():  # the ceiling no step can pass: the decoder's mean images of the unquantised codes
        unquantised = torch.sigmoid(model.decode(posterior_means(model, flat, batch=BATCH)))
    write_json(HERE / f"results/vae-beta-{name}.json", {
        "beta": beta, "model_sha256": model_sha256, "points": points,
        "unquantised": {"accuracy": accuracy(judge, unquantised, labels), "psnr_db": mean_psnr(unquantised, flat)}})
    for point in points:
        print(f"beta {name}, step {point['setting']:g}: {point['bytes_per_image']:.2f} bytes/image, accuracy "
              f"{point['accuracy']:.4f}, PSNR {point['psnr_db']:.2f} dB")


if __name__ == "__main__":
    run_stage(main)

"""The study's points → metrics.json (the bytes each codec needs at accuracies 0.90 to 0.97, the VAE's best within
6 and 10 bytes, the ratios to PCA and to JPEG/WebP), plots/csv/<codec>.csv for `dvc plots`, and the R-D figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

import pandas as pd  # noqa: E402

from vaepipe.codecs.rate_distortion import summary  # noqa: E402
from vaepipe.core.artifacts import atomic_path, write_json  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.figures.plots import rate_distortion_curves  # noqa: E402
from ratedistortion_params import RateDistortionParams  # noqa: E402

LEVELS = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]


def main() -> None:
    study = load_params(HERE / "params.yaml", RateDistortionParams)
    vae = [point for beta in study.betas
           for point in json.loads((HERE / f"results/vae-beta-{beta:g}.json").read_text())["points"]]
    baselines = json.loads((HERE / "results/baselines.json").read_text())["points"]
    points = pd.DataFrame(vae + baselines)
    for codec, rows in points.groupby("codec", sort=True):
        with atomic_path(HERE / f"plots/csv/{codec}.csv") as tmp:
            rows.sort_values("bytes_per_image").to_csv(tmp, index=False)
    pca = [p for p in baselines if p["codec"] == "pca"]
    pillow = [p for p in baselines if p["codec"] in ("jpeg", "webp")]
    metrics = summary(vae, pca, pillow, LEVELS)
    write_json(HERE / "metrics.json", metrics)
    rate_distortion_curves(points, HERE / "plots/rate_distortion.png")
    for level, entry in metrics["accuracy_levels"].items():
        print(f"accuracy {level}: VAE {entry['vae_bytes']:.2f} bytes, PCA {entry['pca_bytes']:.2f}, "
              f"ratio {entry['vae_to_pca']:.3f}")


if __name__ == "__main__":
    main()

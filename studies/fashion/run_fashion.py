"""The default pipeline on Fashion-MNIST: the root's dvc.yaml, params.yaml, stages/ and src/ copied to a temporary
directory, `dataset: fashion-mnist` set there (MNIST becomes the out-of-distribution set), `dvc repro`; its metrics
files and stage times → metrics.json, its samples and style-transfer figures → plots/, and its clusters →
clusters.safetensors (studies/fewlabels names them).

    python run_fashion.py     # from studies/fashion, with VAE_DATA_MIRROR set as for `dvc repro`
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT / "bench")]

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from pipeline_times import repro_in_copy  # noqa: E402  (bench/: each stage's time, as the benchmark measures it)


def main() -> None:
    kept = {"plots/generate/samples.png": HERE / "plots/samples.png",
            "plots/style/transfer.png": HERE / "plots/style_transfer.png",
            "data/clusters.safetensors": HERE / "clusters.safetensors"}
    stage_seconds, total_seconds, metrics = repro_in_copy(lambda params: params.update(dataset="fashion-mnist"),
                                                          keep=kept)
    write_json(HERE / "metrics.json", {
        "dataset": "fashion-mnist",
        "stage_seconds": {stage: round(seconds, 1) for stage, seconds in stage_seconds.items()},
        "total_seconds": round(total_seconds, 1), "metrics": metrics})


if __name__ == "__main__":
    run_stage(main)

"""One run of the variation study: the default pipeline (the root's dvc.yaml, params.yaml, stages/ and src/) copied
to a temporary directory, `seed`, `judge.seed` (the seed minus 1) and the four precisions set there, `dvc repro`, and
its metrics files, stage times and machine → results/<seed>-<precision>.json.

    python run_pipeline.py 2 fp32     # from studies/variation, with VAE_DATA_MIRROR set as for `dvc repro`
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT / "bench")]

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import FIXED_PRECISIONS  # noqa: E402
from pipeline_times import repro_in_copy  # noqa: E402  (bench/: each stage's time, as the benchmark measures it)

PRECISION_KEYS = ("train", "evaluate", "judge", "cluster")  # the sections whose `precision` a run sets


def main() -> None:
    if (len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1
            or sys.argv[2] not in FIXED_PRECISIONS):
        raise PipelineError("usage: python run_pipeline.py SEED PRECISION "
                            f"(a seed >= 1; one of {', '.join(FIXED_PRECISIONS)})")
    seed, precision = int(sys.argv[1]), sys.argv[2]

    def seeded(params: dict) -> None:
        params["seed"], params["judge"]["seed"] = seed, seed - 1
        for section in PRECISION_KEYS:
            params[section]["precision"] = precision

    stage_seconds, total_seconds, metrics = repro_in_copy(seeded)
    write_json(HERE / f"results/{seed}-{precision}.json", {
        "seed": seed, "precision": precision,
        "stage_seconds": {stage: round(seconds, 1) for stage, seconds in stage_seconds.items()},
        "total_seconds": round(total_seconds, 1), "metrics": metrics})


if __name__ == "__main__":
    run_stage(main)

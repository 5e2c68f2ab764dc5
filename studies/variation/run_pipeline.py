"""One run of the variation study: the default pipeline (the root's dvc.yaml, params.yaml, stages/ and src/) copied
to a temporary directory, `seed`, `judge.seed` (the seed minus 1) and the three precisions set there, `dvc repro`, and
its metrics files, stage times and machine → results/<seed>-<precision>.json.

    python run_pipeline.py 2 fp32     # from studies/variation, with VAE_DATA_MIRROR set as for `dvc repro`
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT / "bench")]

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import FIXED_PRECISIONS, load_params  # noqa: E402
from pipeline_times import timed_repro  # noqa: E402  (bench/: each stage's time, as the benchmark measures it)

PRECISION_KEYS = ("train", "evaluate", "judge")  # the sections whose `precision` a run sets
PIPELINE_FOLDERS = ("stages", "src")  # with dvc.yaml and params.yaml, what the pipeline's stages read besides data


def main() -> None:
    if (len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1
            or sys.argv[2] not in FIXED_PRECISIONS):
        raise PipelineError("usage: python run_pipeline.py SEED PRECISION "
                            f"(a seed >= 1; one of {', '.join(FIXED_PRECISIONS)})")
    seed, precision = int(sys.argv[1]), sys.argv[2]
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="variation-") as tmp:
        root = Path(tmp)
        shutil.copy(REPO_ROOT / "dvc.yaml", root)
        for folder in PIPELINE_FOLDERS:
            shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        params["seed"], params["judge"]["seed"] = seed, seed - 1
        for section in PRECISION_KEYS:
            params[section]["precision"] = precision
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        load_params(root / "params.yaml")  # a bad params.yaml fails here, in one line
        subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
        stage_seconds, total_seconds, exit_code = timed_repro(root)
        if exit_code:
            raise PipelineError(f"dvc repro failed in the run's copy (exit {exit_code}); its output is above")
        metrics = {file: json.loads((root / file).read_text()) for file in pipeline["metrics"]}
    write_json(HERE / f"results/{seed}-{precision}.json", {
        "seed": seed, "precision": precision,
        "stage_seconds": {stage: round(seconds, 1) for stage, seconds in stage_seconds.items()},
        "total_seconds": round(total_seconds, 1), "metrics": metrics})


if __name__ == "__main__":
    run_stage(main)

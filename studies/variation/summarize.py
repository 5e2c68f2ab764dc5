"""The variation study's tolerances → tolerances.json, and its table (markdown, on stdout). For each headline
metric: its mean and standard deviation over the seeds in each precision, the precision effect (the spread of
those means), and the tolerance `vaepipe-verify` applies to |yours - committed|: sd_multiple x sqrt(2) x the
pooled standard deviation (both runs vary: their difference spreads sqrt(2) times as far) + the precision effect.
Also each precision's mean stage times, and the machine the runs came from."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.artifacts import write_json  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from vaepipe.core.verify import value  # noqa: E402
from variation_params import VariationParams  # noqa: E402


def read_run(seed: int, precision: str) -> dict:
    path = HERE / f"results/{seed}-{precision}.json"
    if not path.is_file():
        raise PipelineError(f"{path.relative_to(HERE)} is missing: run `dvc repro studies/variation/dvc.yaml`")
    return json.loads(path.read_text())


def main() -> None:
    study = load_params(HERE / "params.yaml", VariationParams)
    runs = {precision: [read_run(seed, precision) for seed in study.seeds] for precision in study.precisions}
    tolerances: dict[str, dict] = {}
    print("| metric | " + " | ".join(f"{p} mean ± sd" for p in study.precisions) + " | tolerance |")
    print("| --- " * (len(study.precisions) + 2) + "|")
    for file, keys in study.metrics.items():
        for key in keys:
            values = {p: [value(run["metrics"][file], key) for run in done] for p, done in runs.items()}
            if any(math.isnan(v) for vs in values.values() for v in vs):
                raise PipelineError(f"params.yaml: `metrics.{file}` names {key}, which a run's metrics lack")
            mean = {p: statistics.fmean(vs) for p, vs in values.items()}
            sd = {p: statistics.stdev(vs) for p, vs in values.items()}
            pooled_sd = math.sqrt(statistics.fmean(s ** 2 for s in sd.values()))
            effect = max(mean.values()) - min(mean.values())
            tolerance = study.sd_multiple * math.sqrt(2) * pooled_sd + effect
            tolerances.setdefault(file, {})[key] = {"tolerance": tolerance, "mean": mean, "sd": sd,
                                                    "precision_effect": effect}
            print(f"| {Path(file).stem}: `{key}` | " + " | ".join(f"{mean[p]:.5g} ± {sd[p]:.2g}" for p in mean)
                  + f" | {tolerance:.3g} |")
    stage_seconds = {p: {stage: round(statistics.fmean(run["stage_seconds"][stage] for run in done), 1)
                         for stage in done[0]["stage_seconds"]} for p, done in runs.items()}
    first = runs[study.precisions[0]][0]["metrics"]["metrics/train/metrics.json"].get("run", {})
    write_json(HERE / "tolerances.json", {
        "seeds": list(study.seeds), "precisions": list(study.precisions), "sd_multiple": study.sd_multiple,
        "machine": {key: first[key] for key in ("device", "hardware", "torch") if key in first},
        "stage_seconds": stage_seconds,
        "total_seconds": {p: round(sum(s.values()), 1) for p, s in stage_seconds.items()},
        "metrics": tolerances})


if __name__ == "__main__":
    run_stage(main)

"""`vaepipe-verify`: are your run's metrics the committed run's, within the tolerances the variation study
measured (studies/variation: seeds and precisions)? A table of each metric's committed value, yours, its
tolerance and the verdict, under a line naming the hardware and precision each side came from; exit code 1 when
any metric is outside its tolerance.

    vaepipe-verify                      # the workspace (after `dvc repro`) against the last commit
    vaepipe-verify --exp my-experiment  # a `dvc exp run` experiment instead
    vaepipe-verify --against v1.0       # another committed run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from vaepipe.core import paths
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import InputError

EXIT_MISS = 1


def read_tolerances(path: str | Path) -> dict[str, dict[str, float]]:
    """{metrics file: {dotted metric: tolerance}} from the variation study's tolerances file."""
    try:
        study = json.loads(Path(path).read_text())
        return {file: {metric: float(entry["tolerance"]) for metric, entry in metrics.items()}
                for file, metrics in study["metrics"].items()}
    except FileNotFoundError:
        raise InputError(f"{path}: no tolerances file; run `dvc repro studies/variation/dvc.yaml`") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a tolerances file ({type(exc).__name__}: {exc})") from None


def metrics_at(files: list[str], rev: str | None) -> dict[str, dict]:
    """Each metrics file as committed at `rev` (a commit, branch, tag or `dvc exp` name), or in the workspace
    (None); a file the run lacks is {}."""
    if rev is None:
        return {file: json.loads(Path(file).read_text()) if Path(file).is_file() else {} for file in files}
    import dvc.api
    from dvc.exceptions import DvcException, PathMissingError

    found = {}
    for file in files:
        try:
            found[file] = json.loads(dvc.api.read(file, rev=rev))
        except PathMissingError:
            found[file] = {}
        except DvcException as exc:
            raise InputError(f"cannot read {file} at {rev!r}: {exc}") from None
    return found


def value(metrics: dict, dotted: str) -> float:
    """The number at a dotted key of a metrics file's content (a list item by its index, e.g. `steps.0.accuracy`);
    NaN where there is none."""
    for key in dotted.split("."):
        if isinstance(metrics, list) and key.isdigit() and int(key) < len(metrics):
            metrics = metrics[int(key)]
        elif isinstance(metrics, dict) and key in metrics:
            metrics = metrics[key]
        else:
            return math.nan
    return float(metrics) if isinstance(metrics, (int, float)) and not isinstance(metrics, bool) else math.nan


def verdicts(committed: dict[str, dict], yours: dict[str, dict], tolerances: dict[str, dict[str, float]]
             ) -> pd.DataFrame:
    """A row a metric: committed, yours, tolerance and `ok` (|yours - committed| <= tolerance) or `MISS` (outside,
    or missing on either side)."""
    rows = []
    for file, metrics in tolerances.items():
        for metric, tolerance in metrics.items():
            old, new = value(committed.get(file, {}), metric), value(yours.get(file, {}), metric)
            inside = abs(new - old) <= tolerance  # False when either is NaN (missing)
            rows.append({"metric": f"{Path(file).stem}: {metric}", "committed": old, "yours": new,
                         "tolerance": tolerance, "verdict": "ok" if inside else "MISS"})
    return pd.DataFrame(rows)


def described_run(metrics: dict[str, dict]) -> str:
    """Where a run came from, as its metrics files record it (their `run` blocks)."""
    runs = {Path(file).parent.name if Path(file).stem == "metrics" else Path(file).stem: content["run"]
            for file, content in metrics.items() if isinstance(content.get("run"), dict)}
    if not runs:
        return "not recorded"
    first = next(iter(runs.values()))
    machine = f"{first.get('device')} {first.get('hardware')}, torch {first.get('torch')}"
    precisions = ", ".join(f"{stage} {run['precision']}" for stage, run in runs.items() if "precision" in run)
    return f"{machine}; precision: {precisions}" if precisions else machine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vaepipe-verify", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", metavar="NAME", help="check this dvc experiment instead of the workspace")
    parser.add_argument("--against", metavar="REV", default="HEAD",
                        help="the committed run to compare with (default: %(default)s)")
    parser.add_argument("--tolerances", metavar="FILE", default=paths.TOLERANCES,
                        help="the variation study's tolerances (default: %(default)s)")
    args = parser.parse_args(argv)
    tolerances = read_tolerances(args.tolerances)
    committed, yours = metrics_at(list(tolerances), args.against), metrics_at(list(tolerances), args.exp)
    table = verdicts(committed, yours, tolerances)
    print(f"committed ({args.against}): {described_run(committed)}")
    print(f"yours ({args.exp or 'workspace'}): {described_run(yours)}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.5g}"))
    misses = int((table["verdict"] == "MISS").sum())
    print(f"{misses} of {len(table)} metrics outside their tolerance" if misses else
          f"all {len(table)} metrics within their tolerance")
    if misses:
        sys.exit(EXIT_MISS)


def entry_point() -> None:
    run_stage(main)


if __name__ == "__main__":
    entry_point()

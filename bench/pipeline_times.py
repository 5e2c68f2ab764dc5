"""Wall time of every stage of the default pipeline, as a new user gets it: `dvc repro --force` in a fresh clone.

    python bench/pipeline_times.py                 # clones this repository's HEAD into a temporary folder
    python bench/pipeline_times.py --out bench/results-cpu-pipeline.json

The clone shares nothing with this checkout but the virtualenv (its `python` runs the stages) and the
offline mirror ($VAE_DATA_MIRROR); --force runs every stage, downstream included, whose outputs git
tracks. A stage's time runs from the line in which DVC starts it to the line that starts the next one
(the last one's to DVC's exit), so DVC's own bookkeeping between stages is counted too. The clone's
metrics are compared with the committed ones: a fresh clone's `dvc repro` reproduces them byte for byte.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 360  # the default pipeline's budget on the 2-core CPU (README, "Performance")
STAGE_START = re.compile(r"^Running stage '([^']+)'")


def timed_repro(clone: Path) -> tuple[dict[str, float], float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    stages: dict[str, float] = {}
    current, since = None, start
    with subprocess.Popen(["dvc", "repro", "--force"], cwd=clone, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            match = STAGE_START.match(line)
            if match:
                now = time.perf_counter()
                if current:
                    stages[current] = now - since
                current, since = match.group(1), now
    end = time.perf_counter()
    if proc.returncode:
        sys.exit(f"error: `dvc repro --force` failed in {clone} (exit {proc.returncode})")
    if current:
        stages[current] = end - since
    return stages, end - start


def differing_metrics(clone: Path) -> list[str]:
    """Committed metrics files whose bytes the clone's run did not reproduce."""
    tracked = subprocess.run(["git", "ls-files", "metrics"], cwd=clone, capture_output=True, text=True,
                             check=True).stdout.split()
    changed = subprocess.run(["git", "status", "--porcelain", "--", *tracked], cwd=clone, capture_output=True,
                             text=True, check=True).stdout
    return [line[3:] for line in changed.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if not os.environ.get("VAE_DATA_MIRROR"):
        sys.exit("error: set VAE_DATA_MIRROR to the offline mirror (e.g. ../shared/data); the download stage reads it")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as root:
        clone = Path(root) / "repo"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        stages, total = timed_repro(clone)
        differing = differing_metrics(clone)
    summary = {"commit": commit, "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
               "stages_s": stages, "total_s": total, "budget_s": BUDGET_S, "metrics_differing": differing}
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print("\n| stage | wall time |\n| --- | --- |")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds:.1f} s |")
    print(f"| **total** (`dvc repro --force`, budget {BUDGET_S} s) | **{total:.1f} s** |")
    if differing:
        print(f"metrics not reproduced byte for byte: {', '.join(differing)}", file=sys.stderr)


if __name__ == "__main__":
    main()

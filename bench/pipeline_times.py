"""Wall time of every stage of the default pipeline, as a new user gets it: `dvc repro --force` in a fresh clone.

    python bench/pipeline_times.py                 # clones this repository's HEAD into a temporary folder
    python bench/pipeline_times.py --out bench/results-cpu-pipeline.json
    python bench/pipeline_times.py --budget 180 --out bench/results-cuda-pipeline.json   # on a GPU machine
    python bench/pipeline_times.py --cold          # compiles included, as on a new machine
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell \
        NUMBA_CPU_NAME=haswell python bench/pipeline_times.py --cold --out bench/results-cpu-pipeline-avx2.json
                                                   # an AVX2 CPU's kernels (torch, numpy, numba), on a bigger CPU

The clone shares nothing with this checkout but the Python environment (its `python` runs the stages) and the
offline mirror ($VAE_DATA_MIRROR); --force runs every stage, downstream included, whose outputs git
tracks. Where there is no git (a copied tree on a GPU machine, say), the tree is copied without its data, models
and caches, and DVC runs without git. A stage's time runs from the line in which DVC starts it to the line that
starts the next one (the last one's to DVC's exit), so DVC's own bookkeeping between stages is counted too. The
clone's metrics are compared with this checkout's: on the machine that made them, a fresh clone's `dvc repro`
reproduces them byte for byte. A failing stage still leaves the times measured so far in --out (exit 1).
With --cold, torch.compile's and numba's caches start empty, so the times include every compile a new machine
does once (later runs load the compiled code from the caches).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from machine import describe

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
CPU_BUDGET_S = 360  # the default pipeline's budget on the 2-core CPU (docs, "Performance")
STAGE_START = re.compile(r"^Running stage '([^']+)'")
# What a copy leaves behind: the outputs and caches a fresh clone would not have.
NOT_COPIED = {".git", ".venv", ".dvc/cache", ".dvc/tmp", "data", "models", "checkpoints", "dvclive", ".whl",
              ".devdata"}


def timed_repro(clone: Path, caches: Path | None = None) -> tuple[dict[str, float], float, int]:
    """Each stage's seconds, the total and DVC's exit code; torch.compile's and numba's caches go under `caches`
    where given."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if caches:
        env |= {"TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"), "NUMBA_CACHE_DIR": str(caches / "numba")}
    start = time.perf_counter()
    stages: dict[str, float] = {}
    current, since = None, start
    with subprocess.Popen(["dvc", "repro", "--force"], cwd=clone, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        try:
            for line in proc.stdout:
                print(line, end="", file=sys.stderr)
                match = STAGE_START.match(line)
                if match:
                    now = time.perf_counter()
                    if current:
                        stages[current] = now - since
                    current, since = match.group(1), now
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: stop DVC, keep the times measured so far
            proc.terminate()
            current = f"{current} (interrupted)" if current else None
    end = time.perf_counter()
    if current:
        stages[current] = end - since
    return stages, end - start, proc.returncode


def repro_in_copy(edit_params: Callable[[dict], None], keep: dict[str, Path] | None = None
                  ) -> tuple[dict[str, float], float, dict[str, dict]]:
    """The default pipeline (dvc.yaml, params.yaml, stages/ and src/: what its stages read besides data) copied to
    a temporary folder, its params changed by `edit_params`, `dvc repro` there: each stage's seconds, the total, and
    the contents of every metrics file dvc.yaml names. `keep` copies output files out: {path in the run: to}."""
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="pipeline-") as tmp:
        root = Path(tmp)
        shutil.copy(REPO_ROOT / "dvc.yaml", root)
        for folder in ("stages", "src"):
            shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        edit_params(params)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        load_params(root / "params.yaml")  # a bad params.yaml fails here, in one line
        subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
        stage_seconds, total_seconds, exit_code = timed_repro(root)
        if exit_code:
            raise PipelineError(f"dvc repro failed in the copy (exit {exit_code}); its output is above")
        for made, to in (keep or {}).items():
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / made, to)
        return stage_seconds, total_seconds, {file: json.loads((root / file).read_text()) for file in pipeline["metrics"]}


def fresh_copy(clone: Path) -> None:
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        return

    def left_out(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(REPO_ROOT)
        return {name for name in names if (relative / name).as_posix().removeprefix("./") in NOT_COPIED}

    shutil.copytree(REPO_ROOT, clone, ignore=left_out, symlinks=True)
    subprocess.run(["dvc", "config", "--local", "core.no_scm", "true"], cwd=clone, check=True)


def differing_metrics(clone: Path) -> list[str]:
    """This checkout's metrics files whose bytes the clone's run did not reproduce."""
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        names = subprocess.run(["git", "ls-files", "metrics"], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
    else:
        names = [str(f.relative_to(REPO_ROOT)) for f in sorted((REPO_ROOT / "metrics").rglob("*")) if f.is_file()]
    return [name for name in names
            if not (clone / name).is_file() or (clone / name).read_bytes() != (REPO_ROOT / name).read_bytes()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--budget", type=float, default=CPU_BUDGET_S, help="seconds the whole run should take")
    parser.add_argument("--cold", action="store_true", help="start from empty compile caches (a new machine)")
    args = parser.parse_args()
    if not os.environ.get("VAE_DATA_MIRROR"):
        sys.exit("error: set VAE_DATA_MIRROR to the offline mirror (e.g. ../shared/data); the download stage reads it")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # what `device: auto` picks
    with tempfile.TemporaryDirectory() as root:
        clone = Path(root) / "repo"
        fresh_copy(clone)
        stages, total, returncode = timed_repro(clone, Path(root) / "caches" if args.cold else None)
        differing = differing_metrics(clone)
    summary = {"machine": describe(device), "compile_caches": "cold" if args.cold else "warm", "stages_s": stages,
               "total_s": total, "budget_s": args.budget,
               "dvc_repro_exit": returncode, "metrics_differing": differing}
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print("\n| stage | wall time |\n| --- | --- |")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds:.1f} s |")
    print(f"| **total** (`dvc repro --force`, budget {args.budget:g} s) | **{total:.1f} s** |")
    if differing:
        print(f"metrics not reproduced byte for byte: {', '.join(differing)}", file=sys.stderr)
    if returncode:
        sys.exit(f"error: `dvc repro --force` failed in the clone (exit {returncode}); the last stage named failed")


if __name__ == "__main__":
    main()

"""`python -m vaepipe.vae.launch --nproc-per-node N SCRIPT [ARGS]`: run a script on N processes of this machine with
torchrun (`--standalone`), or, for N = 1, in this process, as `python SCRIPT [ARGS]` would.

Plain `torchrun --standalone --nproc-per-node N SCRIPT` trains the same; this wrapper keeps a failing stage to
its one line: params.yaml is checked once, before any process starts; only process 0's output reaches the
terminal (the others' goes to files, and an error of theirs is shown as one line naming them); and torchrun's own
traceback of a failed process is left out. Each process gets an equal share of the CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

from vaepipe.core.cli import run_stage
from vaepipe.core.errors import PipelineError
from vaepipe.core.params import load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vaepipe.vae.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc-per-node", type=int, required=True, help="processes (the train stage passes train.nproc)")
    parser.add_argument("script", help="the stage script, e.g. stages/train.py")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    return parser.parse_args(argv)


def launch(nproc: int, script: str, *script_args: str) -> None:
    if nproc == 1:
        sys.argv = [script, *script_args]
        runpy.run_path(script, run_name="__main__")
        return
    # Imported here: torch's import takes seconds, which a one-process run spends in the script anyway.
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    log_dir = Path(tempfile.mkdtemp(prefix="vaepipe-torchrun-"))
    # Process 0 writes to the terminal; the others' stdout and stderr go to files under log_dir.
    others_to_files = ",".join(f"{rank}:3" for rank in range(1, nproc))
    args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", f"--redirects={others_to_files}",
                                f"--log-dir={log_dir}", script, *script_args])
    keep_logs = False
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        if 0 not in exc.failures:  # else its error is on the terminal already
            keep_logs = True
            rank = min(exc.failures)
            (stderr,) = log_dir.glob(f"*/attempt_*/{rank}/stderr.log")
            last = (stderr.read_text().strip().splitlines() or ["(nothing on stderr)"])[-1]
            print(f"error: process {rank} of {nproc}: {last.removeprefix('error: ')} (its output: {stderr.parent})",
                  file=sys.stderr)
        code = exc.failures[min(exc.failures)].exitcode
        sys.exit(code if code > 0 else 1)  # < 0: killed by a signal
    finally:
        if not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_params()  # a bad params.yaml fails here, once, rather than in every process
    if args.nproc_per_node < 1:
        raise PipelineError(f"--nproc-per-node must be >= 1, got {args.nproc_per_node}")
    launch(args.nproc_per_node, args.script, *args.script_args)


if __name__ == "__main__":
    run_stage(main)

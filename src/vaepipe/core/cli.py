"""What every stage script shares: a user's mistake ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from vaepipe.core.errors import PipelineError

EXIT_USER_ERROR = 2
# What a shell reports for a program that a closed pipe stopped (`cmd | head`): killed by SIGPIPE.
EXIT_PIPE_CLOSED = 128 + signal.SIGPIPE


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; a PipelineError becomes `error: <message>` on stderr and exit code 2. A reader that stops
    early (`| head`) ends the run quietly, as it ends `cat`."""
    # A CUDA build of torch on a machine without CUDA logs "No CUDA runtime is found" when torch.compile
    # first runs: noise on stderr, where a failing stage's one line must stand alone.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:
        # Nothing more can be written there, including what Python flushes at exit (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_PIPE_CLOSED)

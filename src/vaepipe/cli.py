"""What every stage script shares: a user's mistake ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from vaepipe.errors import PipelineError

EXIT_USER_ERROR = 2


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; a PipelineError becomes `error: <message>` on stderr and exit code 2."""
    try:
        main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)

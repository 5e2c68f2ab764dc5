"""`vaepipe.anomaly_cli`, the command's module before it moved to `vaepipe.anomaly.cli`: kept so that
`python -m vaepipe.anomaly_cli` and console scripts installed before the move still run."""

import runpy

from vaepipe.anomaly.cli import entry_point  # noqa: F401  (what an older installed `vaepipe-anomaly` calls)

if __name__ == "__main__":
    runpy.run_module("vaepipe.anomaly.cli", run_name="__main__", alter_sys=True)

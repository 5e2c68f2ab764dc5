"""Stage `check_params`: validate params.yaml whenever it changes, even when every other stage is up to date.

    dvc repro check_params                     # runs with every `dvc repro`; a typo fails it

The other stages depend only on the keys they read, so DVC would silently skip a typo such as
`train.epoch: 5` or `latnet_dim: 16`. This stage depends on the whole file: any edit re-runs it, and a
wrong, unknown or missing key fails `dvc repro` with one line naming it. It writes nothing.
"""

from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params


def main() -> None:
    load_params()
    print("params.yaml: every key is known and valid")


if __name__ == "__main__":
    run_stage(main)

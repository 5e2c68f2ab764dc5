"""The study's copy of a dataset's four verified IDX files: data/<dataset>/ (VAE_DATA_MIRROR as for the pipeline).

    python get_data.py fashion-mnist     # DVC runs it for each of params.yaml's datasets
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.errors import PipelineError  # noqa: E402
from vaepipe.data.datasets import DATASETS, download, mirror_from_env  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in DATASETS:
        raise PipelineError(f"usage: get_data.py DATASET, one of {', '.join(DATASETS)} "
                            f"(got {' '.join(sys.argv[1:]) or 'nothing'})")
    for source in download(sys.argv[1], HERE / "data" / sys.argv[1], mirror_from_env()):
        print(f"{sys.argv[1]}: {source}")


if __name__ == "__main__":
    run_stage(main)

"""Stage `download`: the four IDX files of `dataset`, verified by md5, into data/raw/."""

from vaepipe.cli import run_stage
from vaepipe.data import download, mirror_from_env
from vaepipe.params import load_params

OUT_DIR = "data/raw"


def main() -> None:
    params = load_params()
    for source in download(params.dataset, OUT_DIR, mirror_from_env()):
        print(f"{params.dataset}: {source}")


if __name__ == "__main__":
    run_stage(main)

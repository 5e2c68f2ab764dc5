"""Stage `download`: the four IDX files of `dataset` into data/raw/ and those of the out-of-distribution
dataset (`anomaly.ood_dataset`) into data/ood/, each verified by md5."""

from vaepipe.cli import run_stage
from vaepipe.data import download, mirror_from_env
from vaepipe.params import load_params

OUT_DIRS = {"data/raw": "dataset", "data/ood": "ood_dataset"}


def main() -> None:
    params = load_params()
    for out_dir, which in OUT_DIRS.items():
        dataset = getattr(params, which)
        for source in download(dataset, out_dir, mirror_from_env()):
            print(f"{dataset}: {source}")


if __name__ == "__main__":
    run_stage(main)

"""Stage `download`: the four IDX files of `dataset` into data/raw/ and those of the out-of-distribution
dataset (`anomaly.ood_dataset`) into data/ood/, each verified by md5.

    dvc repro download                         # VAE_DATA_MIRROR=DIR to read a local mirror
    dvc exp run -S dataset=fashion-mnist
"""

from vaepipe.core import paths
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params
from vaepipe.data.datasets import download, mirror_from_env

OUT_DIRS = {paths.RAW: "dataset", paths.OOD: "ood_dataset"}


def main() -> None:
    params = load_params()
    for out_dir, which in OUT_DIRS.items():
        dataset = getattr(params, which)
        for source in download(dataset, out_dir, mirror_from_env()):
            print(f"{dataset}: {source}")


if __name__ == "__main__":
    run_stage(main)

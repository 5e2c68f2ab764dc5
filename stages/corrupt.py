"""Stage `corrupt`: MNIST-C corruptions (vaepipe.data.corruptions) of the test set and of validation images.

    dvc repro corrupt
    dvc exp run -S anomaly.test_subset=1000      # corrupt fewer test images

data/corrupted/test.safetensors holds every corruption of the test images (the first `anomaly.test_subset`
if > 0); val.safetensors those of the
first `anomaly.n_val` images of the validation split, on which the anomaly stage chooses its best score.
Depends on the data only, so DVC re-uses it across model experiments.
"""

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, save_tensors
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params, require_at_most
from vaepipe.data.corruptions import CORRUPTIONS, corrupt
from vaepipe.data.datasets import anomaly_test_images, load_split, train_val_indices



def main() -> None:
    params = load_params()
    test_x = anomaly_test_images(paths.RAW, params.anomaly.test_subset)
    train_x, _ = load_split(paths.RAW, "train")
    _, val = train_val_indices(len(train_x), params.train.val_size, params.seed)
    require_at_most("anomaly.n_val", params.anomaly.n_val, len(val), "the validation split")
    splits = {"test": test_x, "val": train_x[val[: params.anomaly.n_val]]}
    with all_or_nothing():
        for split, images in splits.items():
            save_tensors(f"{paths.CORRUPTED}/{split}.safetensors",
                         {name: corrupt(images, name, params.seed) for name in CORRUPTIONS}, {})
    print(f"{len(CORRUPTIONS)} corruptions of {len(splits['test'])} test and {len(splits['val'])} validation images")


if __name__ == "__main__":
    run_stage(main)

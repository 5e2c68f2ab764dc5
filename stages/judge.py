"""Stage `judge`: train the CNN classifier that scores generated images (vaepipe.generation.judge) on the training images,
report its validation and test accuracy. It reads the data and its own params only, so DVC re-uses it across
VAE experiments.

    dvc repro judge
    dvc exp run -S judge.epochs=5
"""

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.runtime import make_deterministic, provenance, select_device
from vaepipe.data.datasets import load_split, train_val_indices
from vaepipe.generation.judge import accuracy, save_judge, train_judge



def main() -> None:
    params = load_params()
    jp = params.judge
    make_deterministic(jp.seed)
    device = select_device(params.device)
    images, labels = load_split(paths.RAW, "train")
    require_at_most("judge.val_size", jp.val_size, len(images) - 1, "the training set less one image to train on")
    train_idx, val_idx = train_val_indices(len(images), jp.val_size, jp.seed)
    require_at_most("judge.train_subset", jp.train_subset, len(train_idx), "the judge's training split")
    train_idx = train_idx[: jp.train_subset or None]
    print(f"training the judge on {len(train_idx)} {params.dataset} images ({device})")
    judge = train_judge(images[train_idx], labels[train_idx], jp, device,
                        lambda epoch, loss: print(f"epoch {epoch}: cross-entropy {loss:.4f}"))
    test_x, test_y = load_split(paths.RAW, "test")
    metrics = {"val_accuracy": accuracy(judge, images[val_idx], labels[val_idx]),
               "test_accuracy": accuracy(judge, test_x, test_y), "train_images": len(train_idx),
               "run": provenance(device, jp.precision)}
    with all_or_nothing():
        save_judge(paths.JUDGE, judge, params.dataset)
        write_json(paths.metrics("judge"), metrics)
    print(f"judge accuracy: validation {metrics['val_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)

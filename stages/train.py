"""Stage `train`: fit the VAE on the training split, log curves with dvclive, save the weights."""

import torch
from dvclive import Live

from vaepipe.artifacts import save_weights
from vaepipe.cli import run_stage
from vaepipe.data import binarize, load_split
from vaepipe.model import VAE, VAEConfig
from vaepipe.params import load_params
from vaepipe.runtime import generator, make_deterministic, select_device
from vaepipe.training import split_train_val, train

DATA_DIR = "data/raw"
LIVE_DIR = "metrics/train"
MODEL_PATH = "models/vae.safetensors"
# The validation targets are binarised once, so every epoch is scored on the same bits.
VAL_BINARIZATION_SEED = 0


def main() -> None:
    params = load_params()
    make_deterministic(params.seed)
    device = select_device(params.device)
    images, _ = load_split(DATA_DIR, "train")
    train_x, val_x = split_train_val(images, params.train.val_size, params.seed, params.train.train_subset)
    val_x = binarize(val_x, params.train.binarize, generator(torch.device("cpu"), VAL_BINARIZATION_SEED))
    config = VAEConfig(arch=params.train.arch, latent_dim=params.latent_dim, hidden=params.train.hidden)
    model = VAE(config).to(device)
    print(f"training {config} on {len(train_x)} images ({device}), validating on {len(val_x)}")

    with Live(LIVE_DIR, dvcyaml=None, save_dvc_exp=False) as live:
        def log_epoch(epoch, train_stats, val_stats):
            live.step = epoch  # curves are indexed by epoch, 1-based
            for split, stats in (("train", train_stats), ("val", val_stats)):
                for name, value in vars(stats).items():
                    live.log_metric(f"{split}/{name}", value)
            live.make_summary()

        train(model, train_x.to(device), val_x.to(device), params.train, params.seed, log_epoch)
    save_weights(MODEL_PATH, model.state_dict(), config.to_dict())


if __name__ == "__main__":
    run_stage(main)

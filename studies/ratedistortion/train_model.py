"""Train the VAE of one KL weight: the project's params.yaml with `train.beta` set to BETA, trained as the train
stage trains it (so beta 1 gives the default model, byte for byte). Writes models/beta-BETA.safetensors.

    python studies/ratedistortion/train_model.py 2      # after `dvc repro download`; DVC runs every beta
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from vaepipe.core.artifacts import save_weights  # noqa: E402
from vaepipe.core.cli import run_stage  # noqa: E402
from vaepipe.core.params import load_params, parse_params, read_yaml, with_overrides  # noqa: E402
from vaepipe.core.runtime import make_deterministic, select_device  # noqa: E402
from vaepipe.data.datasets import binarize_set, load_split  # noqa: E402
from vaepipe.vae.model import VAE, VAEConfig  # noqa: E402
from vaepipe.vae.training import split_train_val, train  # noqa: E402
from ratedistortion_params import RateDistortionParams  # noqa: E402


def main() -> None:
    name, beta = load_params(HERE / "params.yaml", RateDistortionParams).beta_named(sys.argv, "train_model.py")
    params = parse_params(with_overrides(read_yaml(REPO_ROOT / "params.yaml"), [f"train.beta={beta}"]))
    make_deterministic(params.seed)
    device = select_device(params.device)
    train_x, val_x = split_train_val(load_split(REPO_ROOT / "data/raw", "train")[0], params.train.val_size,
                                     params.seed, params.train.train_subset)
    model = VAE(VAEConfig.from_params(params.latent_dim, params.train)).to(device)
    start = time.perf_counter()
    train(model, train_x.to(device), binarize_set(val_x, params.train.binarize).to(device), params.train,
          params.seed, lambda *_: None)
    save_weights(HERE / f"models/beta-{name}.safetensors", model.state_dict(), model.config.to_dict())
    print(f"beta {name}: trained in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run_stage(main)

"""The one-class study's settings: the schema of its params.yaml, parsed and checked by vaepipe.core.params."""

from __future__ import annotations

from dataclasses import dataclass

from vaepipe.core.params import DEVICES, TrainParams, require, require_one_of
from vaepipe.core.paths import DATASET_NAMES


@dataclass(frozen=True)
class OneClassParams:
    """studies/oneclass/params.yaml: the one-class novelty study's own settings, one small model per digit."""

    datasets: tuple[str, ...]
    seed: int
    latent_dim: int
    device: str
    k: int
    n_val_anomalies: int
    train: TrainParams

    def validate(self) -> None:
        require("datasets", len(self.datasets) > 0 and len(set(self.datasets)) == len(self.datasets),
                "must be a non-empty list of distinct datasets")
        for i, name in enumerate(self.datasets):
            require_one_of(f"datasets[{i}]", name, DATASET_NAMES)
        require("seed", self.seed >= 0, "must be >= 0")
        require("latent_dim", self.latent_dim > 0, "must be > 0")
        require_one_of("device", self.device, DEVICES)
        require("k", self.k > 0, "must be > 0")
        require("n_val_anomalies", self.n_val_anomalies > 0, "must be > 0")
        self.train.validate("train")

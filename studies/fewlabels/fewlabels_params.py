"""The few-label study's settings: the schema of its params.yaml, parsed and checked by vaepipe.core.params."""

from __future__ import annotations

from dataclasses import dataclass

from vaepipe.core.params import DEVICES, PRECISIONS, require, require_one_of
from vaepipe.core.paths import CLASSES, DATASET_NAMES


@dataclass(frozen=True)
class PipelineRun:
    """Files of one run of the default pipeline, relative to the study's folder."""

    clusters: str
    downstream: str


@dataclass(frozen=True)
class FewLabelsParams:
    """studies/fewlabels/params.yaml: a wide CNN student of the named clusters, per dataset and label budget."""

    datasets: dict[str, PipelineRun]
    budgets: tuple[int, ...]
    draws: int
    seed: int
    repeats: int
    epochs: int
    precision: str
    device: str

    def validate(self) -> None:
        require("datasets", len(self.datasets) > 0, "must name at least one dataset")
        for name in self.datasets:
            require_one_of(f"datasets.{name}", name, DATASET_NAMES)
        require("budgets", len(self.budgets) > 0 and len(set(self.budgets)) == len(self.budgets),
                "must be a non-empty list of distinct label counts")
        for i, budget in enumerate(self.budgets):
            require(f"budgets[{i}]", budget >= CLASSES, f"must be >= {CLASSES}, a label of each class")
        require("draws", self.draws > 0, "must be > 0")
        require("seed", self.seed >= 0, "must be >= 0")
        require("repeats", self.repeats >= 0, "must be >= 0")
        require("epochs", self.epochs > 0, "must be > 0")
        require_one_of("precision", self.precision, PRECISIONS)
        require_one_of("device", self.device, DEVICES)

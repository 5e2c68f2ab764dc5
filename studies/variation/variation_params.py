"""The variation study's settings: the schema of its params.yaml, parsed and checked by vaepipe.core.params."""

from __future__ import annotations

from dataclasses import dataclass

from vaepipe.core.params import FIXED_PRECISIONS, require, require_one_of


@dataclass(frozen=True)
class VariationParams:
    """studies/variation/params.yaml: the seeds and precisions the default pipeline runs with, and the metrics
    whose spread becomes a tolerance."""

    seeds: tuple[int, ...]
    precisions: tuple[str, ...]
    sd_multiple: float
    metrics: dict[str, tuple[str, ...]]

    def validate(self) -> None:
        require("seeds", len(self.seeds) >= 2 and len(set(self.seeds)) == len(self.seeds),
                "must be at least 2 distinct seeds (a spread needs two)")
        require("seeds", min(self.seeds) >= 1, "must be >= 1 (the judge's seed is the seed minus 1)")
        require("precisions", len(self.precisions) >= 1, "must name at least one precision")
        for i, precision in enumerate(self.precisions):
            require_one_of(f"precisions[{i}]", precision, FIXED_PRECISIONS)
        require("sd_multiple", self.sd_multiple > 0, "must be > 0")
        require("metrics", bool(self.metrics), "must name at least one metrics file")
        for file, keys in self.metrics.items():
            require(f"metrics.{file}", file.startswith("metrics/") and file.endswith(".json") and bool(keys),
                    "must be a metrics/*.json file with at least one key")

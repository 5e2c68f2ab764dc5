"""The best-configuration study's settings: the schema of its params.yaml, parsed and checked by vaepipe.core.params."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vaepipe.core.params import require


@dataclass(frozen=True)
class BestStudyParams:
    """studies/best/params.yaml: the candidate configurations, each as `dvc exp run -S` overrides of
    params.yaml, and the importance samples that score them on validation and on test images."""

    val_k: int
    test_k: int
    candidates: dict[str, tuple[str, ...]]

    def validate(self) -> None:
        require("val_k", self.val_k > 0, "must be > 0")
        require("test_k", self.test_k > 0, "must be > 0")
        require("candidates", len(self.candidates) > 0, "must name at least one candidate")
        for name, overrides in self.candidates.items():
            # The name becomes file names and a DVC stage name.
            require(f"candidates.{name}", re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) is not None,
                     "is not a name of lowercase letters, digits and hyphens")
            for override in overrides:
                require(f"candidates.{name}", "=" in override, f"has {override!r}, not an override key=value")

"""The rate-distortion study's settings: the schema of its params.yaml, parsed and checked by vaepipe.core.params."""

from __future__ import annotations

from dataclasses import dataclass

from vaepipe.core.errors import PipelineError
from vaepipe.core.params import ENTROPY_MODELS, require, require_one_of, require_steps


@dataclass(frozen=True)
class RateDistortionParams:
    """studies/ratedistortion/params.yaml: the rate-distortion study's models (params.yaml's, each with another
    `train.beta`), the steps each is evaluated at, and the classical codecs' settings."""

    betas: tuple[float, ...]
    steps: tuple[float, ...]
    entropy_model: str
    pca_components: int
    pca_steps: tuple[float, ...]
    jpeg_qualities: tuple[int, ...]
    webp_qualities: tuple[int, ...]
    grid: dict[str, tuple[float, ...]]

    def validate(self) -> None:
        require("betas", len(self.betas) > 0 and all(beta > 0 for beta in self.betas), "must be a list of numbers > 0")
        require_steps("steps", self.steps)
        require_one_of("entropy_model", self.entropy_model, ENTROPY_MODELS)
        require("pca_components", 1 <= self.pca_components <= 784, "must be between 1 and 784")
        require("pca_steps", len(self.pca_steps) > 0 and all(step > 0 for step in self.pca_steps),
                 "must be a list of numbers > 0")
        for key in ("jpeg_qualities", "webp_qualities"):
            require(key, len(getattr(self, key)) > 0 and all(0 <= q <= 100 for q in getattr(self, key)),
                     "must be a list of qualities from 0 to 100")

        settings = {"vae": self.steps, "pca": self.pca_steps, "jpeg": self.jpeg_qualities, "webp": self.webp_qualities}
        require("grid", set(self.grid) == set(settings), f"must give four settings for each of {', '.join(settings)}")
        for codec, chosen in self.grid.items():
            require(f"grid.{codec}", len(chosen) == 4 and set(chosen) <= set(settings[codec]),
                     f"must be four of the {codec} settings the study measures")

    def beta_named(self, argv: list[str], script: str) -> tuple[str, float]:
        """A study script's BETA argument (one of `betas`, as file names write it: 0.5, 1, 2) and its value."""
        betas = {f"{beta:g}": beta for beta in self.betas}
        if len(argv) != 2 or argv[1] not in betas:
            raise PipelineError(f"usage: {script} BETA, one of {', '.join(betas)} (got {' '.join(argv[1:]) or 'nothing'})")
        return argv[1], betas[argv[1]]

"""Where and how reproducibly the stages compute: device choice, seeded generators, deterministic kernels."""

from __future__ import annotations

import os

import torch

from vaepipe.errors import PipelineError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("params.yaml: `device` is cuda but no CUDA GPU is available; use auto or cpu")
    return torch.device(name)


def make_deterministic(seed: int) -> None:
    """Same seed, same machine, same bytes: seeded RNGs and deterministic kernels only."""
    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g

"""Atomic writes and safe loading of every file the stages produce.

A stage that dies half-way must leave the previous good file, never a truncated one: each
writer writes a temporary file in the same directory and renames it over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vaepipe.errors import ArtifactError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | Path, obj: object) -> None:
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_weights(target: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> None:
    """Weights as safetensors, with the config needed to rebuild the model in the file's metadata."""
    # clone(): parameters may be views into one training buffer, and safetensors refuses shared storage.
    tensors = {name: t.detach().to("cpu").clone() for name, t in state_dict.items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"config": json.dumps(config, sort_keys=True)})


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read weights and config back; safetensors holds plain tensors only, so nothing is executed."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: model file is missing; run `dvc repro train` first")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state_dict = load_file(str(path))
        config = json.loads(metadata["config"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable vaepipe model file ({exc})") from None
    return state_dict, config

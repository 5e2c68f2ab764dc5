"""A resumable training state, written atomically at the end of every epoch.

DVC 3 has no checkpoints and deletes a stage's outputs before re-running it, so the checkpoint lives
outside the train stage's outputs. It is tied to a fingerprint of the params, this package's source,
the stage script and the training data: a checkpoint from other params, code or data is ignored,
never resumed from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError

from vaepipe.core.artifacts import load_tensors, save_tensors

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # vaepipe/


def fingerprint(settings: dict, inputs: Iterable[Path] = ()) -> str:
    """sha256 of the settings that determine training (JSON-able), the torch version, every .py file of the
    vaepipe package, its sub-packages' too (by path within it), and the `inputs` (the stage script, the data): a
    change to any of them makes a new fingerprint."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(torch.__version__.encode())
    sources = sorted((path.relative_to(PACKAGE_DIR).as_posix(), path) for path in PACKAGE_DIR.rglob("*.py"))
    for name, path in [*sources, *((path.name, path) for path in inputs)]:
        digest.update(name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Checkpoint:
    """Tensors plus JSON metadata in one safetensors file (nothing in it is ever executed on load)."""

    def __init__(self, path: str | Path, run_fingerprint: str):
        self.path = Path(path)
        self.run_fingerprint = run_fingerprint

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        # A kill during the write leaves the previous checkpoint whole: the file is renamed into place at the end.
        save_tensors(self.path, tensors, {"fingerprint": self.run_fingerprint, "meta": json.dumps(meta)})

    def load(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The saved state if there is a usable one; otherwise None, after saying why it is not used."""
        self._remove_partial_writes()
        if not self.path.is_file():
            return None
        try:
            tensors, header = load_tensors(self.path)
            if header.get("fingerprint") != self.run_fingerprint:
                print(f"{self.path} was made with other params or code; starting fresh")
                return None
            return tensors, json.loads(header["meta"])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            print(f"{self.path} is unreadable ({exc}); starting fresh")
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._remove_partial_writes()

    def _remove_partial_writes(self) -> None:
        """Temporary files of writes that were killed before their rename."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)

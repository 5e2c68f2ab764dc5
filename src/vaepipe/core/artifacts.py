"""Atomic writes and safe loading of every file the stages produce.

A stage that dies half-way must leave the previous good file, never a truncated one: each
writer writes a temporary file in the same directory and renames it over the target. A stage with
several outputs writes them inside `all_or_nothing()`: the renames happen only once every file is
written, and a rename that fails puts back the files the earlier renames replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vaepipe.core.errors import ArtifactError


# (temporary file, target) pairs whose renames wait for the end of the innermost all_or_nothing() block.
_pending: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("pending_renames", default=None)


def _cannot_write(target: Path, exc: OSError) -> ArtifactError:
    return ArtifactError(f"cannot write {target}: {exc.strerror or exc}")


def _temporary_beside(target: Path) -> Path:
    if target.is_dir():
        raise ArtifactError(f"cannot write {target}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except FileExistsError:  # mkdir found a file where the directory should be
        raise ArtifactError(f"cannot write {target}: {target.parent} is not a directory") from None
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Hold back the renames of every atomic_path inside the block until the whole block has succeeded."""
    if _pending.get() is not None:  # nested: the outer block decides
        yield
        return
    pending: list[tuple[Path, Path]] = []
    token = _pending.set(pending)
    try:
        yield
        _rename_all(pending)
    finally:
        _pending.reset(token)
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)


def _rename_all(pending: list[tuple[Path, Path]]) -> None:
    """Rename every temporary file onto its target; if one rename fails, put back what the earlier ones replaced.

    Each target's previous file is kept under a hard link until all renames are done. Only a crash
    between two renames (microseconds) can leave some targets new and others old, each of them whole.
    """
    done: list[tuple[Path, Path | None]] = []  # (target, link to its previous file, if it had one)
    try:
        for tmp, target in pending:
            done.append((target, _keep_previous(target, tmp.with_suffix(".previous.tmp"))))
            os.replace(tmp, target)
    except OSError as exc:
        for earlier, previous in reversed(done):
            if previous is not None:
                os.replace(previous, earlier)
            elif earlier != target:
                earlier.unlink(missing_ok=True)
        raise _cannot_write(target, exc) from None
    finally:
        for _, previous in done:
            if previous is not None:
                previous.unlink(missing_ok=True)


def _keep_previous(target: Path, keep: Path) -> Path | None:
    """Hard-link `target`'s current file to `keep` (copy it where links are not supported); None if there is none."""
    if not target.is_file():
        return None
    try:
        os.link(target, keep)
    except OSError:
        try:
            shutil.copy2(target, keep)
        except OSError:
            keep.unlink(missing_ok=True)
            raise
    return keep


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    Failing to write becomes a one-line ArtifactError naming the target and the reason.
    """
    target = Path(target)
    with all_or_nothing():
        tmp = _temporary_beside(target)
        try:
            yield tmp
            os.chmod(tmp, 0o644)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _cannot_write(target, exc) from None
            raise
        _pending.get().append((tmp, target))


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | Path, obj: object) -> None:
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_tensors(target: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Tensors and string metadata as one safetensors file, written atomically."""
    # clone(): tensors may be views into one buffer (the trained parameters are), and safetensors refuses
    # shared storage.
    tensors = {name: t.detach().to("cpu").clone() for name, t in tensors.items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes: ties a derived artifact to the exact model it was made with."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file: plain data only, nothing is executed.
    A damaged file raises SafetensorError or OSError."""
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}, f.metadata() or {}


def save_weights(target: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> None:
    """Weights as safetensors, with the config needed to rebuild the model in the file's metadata."""
    save_tensors(target, state_dict, {"config": json.dumps(config, sort_keys=True)})


def load_described_tensors(path: str | Path, key: str, what: str, stage: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and the JSON object under `key` in the metadata of a `what` file the stage `stage` writes
    (see load_tensors: nothing is executed). Any problem is a one-line ArtifactError saying what to re-run."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} file is missing; run `dvc repro {stage}` first")
    try:
        tensors, metadata = load_tensors(path)
        return tensors, json.loads(metadata[key])
    except KeyError:
        raise ArtifactError(f"{path}: no vaepipe {what} {key} in its metadata (not written by the {stage} stage); "
                            f"run `dvc repro {stage}`") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable vaepipe {what} file ({exc})") from None


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and the model config written by save_weights."""
    return load_described_tensors(path, "config", "model", "train")


def read_metric(path: str | Path, key: str, stage: str) -> float:
    """The number under the dotted `key` of a stage's metrics file; a missing or garbled file is a one-line error."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
        for part in key.split("."):
            value = value[part]
        return float(value)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: metrics file is missing; run `dvc repro {stage}` first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: no number under `{key}` ({type(exc).__name__}: {exc}); "
                            f"run `dvc repro {stage}`") from None


def replace_dir(source: str | Path, target: str | Path) -> None:
    """Move the finished directory `source` onto `target`: a crash leaves `target` old or new, never mixed."""
    source, target = Path(source), Path(target)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.replace(target, old)
        os.replace(source, target)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    shutil.rmtree(old, ignore_errors=True)

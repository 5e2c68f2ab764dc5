"""Several outputs become visible together or not at all, even when a rename fails part-way."""

import errno
import os

import pytest

from vaepipe.core.artifacts import all_or_nothing, write_bytes
from vaepipe.core.errors import ArtifactError

NAMES = ("first.json", "second.png", "third.csv")


@pytest.fixture
def outputs(tmp_path):
    """Three targets: the first two hold an earlier run's files, the third does not exist yet."""
    for name in NAMES[:2]:
        (tmp_path / name).write_bytes(b"old " + name.encode())
    return tmp_path


def state(root):
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in sorted(root.iterdir())}


def fail_rename(monkeypatch, failing_call: int):
    """Make the n-th rename of a finished temporary file onto its target fail, as a full disk would."""
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if str(src).endswith(".tmp") and not str(src).endswith(".previous.tmp"):
            calls.append(dst)
            if len(calls) == failing_call:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)


def write_all(root):
    with all_or_nothing():
        for name in NAMES:
            write_bytes(root / name, b"new " + name.encode())


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_a_failed_rename_puts_back_every_earlier_one(outputs, monkeypatch, failing_call):
    before = state(outputs)
    fail_rename(monkeypatch, failing_call)
    with pytest.raises(ArtifactError, match=rf"cannot write .*{NAMES[failing_call - 1]}: No space left on device"):
        write_all(outputs)
    assert state(outputs) == before  # same bytes, same inodes, no temporary file, no new file


def test_all_renames_succeed(outputs):
    write_all(outputs)
    assert {name: content for name, (_, content) in state(outputs).items()} == {
        name: b"new " + name.encode() for name in NAMES}


def test_a_failure_before_the_renames_changes_nothing(outputs):
    before = state(outputs)
    with pytest.raises(RuntimeError), all_or_nothing():
        write_bytes(outputs / NAMES[0], b"new")
        raise RuntimeError("the stage failed after writing one output")
    assert state(outputs) == before

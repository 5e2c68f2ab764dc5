"""`vaepipe-compress` / `vaepipe-decompress` on arrays made here, with the model of the tiny run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_command
from vaepipe.codecs.cli import compress, decompress
from vaepipe.codecs.container import pack, unpack
from vaepipe.core.artifacts import save_weights
from vaepipe.core.cli import EXIT_USER_ERROR
from vaepipe.data.datasets import binarize_set, load_split
from vaepipe.vae.model import VAE, load_model

MODEL = "models/vae.safetensors"


@pytest.fixture(scope="module")
def digits(mnist_raw) -> np.ndarray:
    """120 test digits binarised as the pipeline does: uint8 0/1 [120, 28, 28]."""
    x = load_split(mnist_raw, "test")[0][:120]
    return binarize_set(x, "dynamic").to(torch.uint8).view(-1, 28, 28).numpy()


def idx_file(path: Path, images: np.ndarray) -> Path:
    path.write_bytes(b"".join(v.to_bytes(4, "big") for v in (0x803, *images.shape)) + images.tobytes())
    return path


@pytest.mark.parametrize("kind", ["uint8-01", "uint8-0-255", "float32-flat", "bool-one-image", "int64", "idx"])
def test_round_trip_gives_the_same_file_back(work_dir, digits, capsys, kind):
    arrays = {"uint8-01": digits, "uint8-0-255": digits * 255, "float32-flat": digits.reshape(-1, 784).astype(np.float32),
              "bool-one-image": digits[7].astype(bool), "int64": digits[:13].astype(np.int64)}
    if kind == "idx":
        original = idx_file(work_dir / "digits-idx3-ubyte", digits * 255)
    else:
        original = work_dir / "digits.npy"
        np.save(original, arrays[kind])
    code, out, err = run_command(capsys, compress, original)
    compressed = original.with_name(original.name + ".vbb")
    assert code == 0 and err == [] and compressed.exists()
    assert re.fullmatch(rf"{re.escape(str(original))}: \d+ images -> {re.escape(str(compressed))}, .* bits/pixel, .*", out[0])
    code, out, err = run_command(capsys, decompress, compressed, "-o", work_dir / "back")
    assert code == 0 and err == []
    assert (work_dir / "back").read_bytes() == original.read_bytes()


def test_the_reported_rates_are_the_file_s(work_dir, digits, capsys):
    np.save(work_dir / "digits.npy", digits)
    _, out, _ = run_command(capsys, compress, work_dir / "digits.npy")
    data = (work_dir / "digits.npy.vbb").read_bytes()
    initial_bits = unpack(data, "x")[0]["initial_bits"]
    assert 0 < initial_bits < 8 * len(data)
    assert out == [f"{work_dir / 'digits.npy'}: 120 images -> {work_dir / 'digits.npy.vbb'}, {len(data):,} bytes: "
                   f"{8 * len(data) / digits.size:.4f} bits/pixel, {(8 * len(data) - initial_bits) / digits.size:.4f} "
                   f"net of the {initial_bits // 8:,} bytes the coder starts from"]


def test_grey_images_are_binarised_only_when_asked_and_it_says_so(work_dir, mnist_raw, capsys):
    grey = (load_split(mnist_raw, "test")[0][:20] * 255).round().to(torch.uint8).view(-1, 28, 28).numpy()
    np.save(work_dir / "grey.npy", grey)
    code, out, err = run_command(capsys, compress, work_dir / "grey.npy")
    assert code == EXIT_USER_ERROR and out == [] and not (work_dir / "grey.npy.vbb").exists()
    assert err == [f"error: {work_dir / 'grey.npy'}: pixels are not binary ({len(np.unique(grey))} distinct values from 0 to 255); "
                   "pass --binarize 0.5 to threshold grey images (lossy)"]
    code, out, err = run_command(capsys, compress, work_dir / "grey.npy", "--binarize", "0.3")
    assert code == 0 and "grey images binarised at 0.3 x 255 (lossy" in out[0]
    run_command(capsys, decompress, work_dir / "grey.npy.vbb", "-o", work_dir / "binary.npy")
    assert np.array_equal(np.load(work_dir / "binary.npy"), np.where(grey > 0.3 * 255, 255, 0).astype(np.uint8))


def damaged_file(case: str, root: Path, digits: np.ndarray, capsys) -> tuple[Path, str]:
    """A compressed file damaged as `case` says, and the one error line expected."""
    np.save(root / "digits.npy", digits)
    run_command(capsys, compress, root / "digits.npy")
    path = root / "digits.npy.vbb"
    data = path.read_bytes()
    if case == "truncated":
        path.write_bytes(data[: len(data) // 2])
        return path, f"{path}: checksum mismatch: the file is truncated or corrupted"
    if case == "bit-flip":
        path.write_bytes(data[:900] + bytes([data[900] ^ 16]) + data[901:])
        return path, f"{path}: checksum mismatch: the file is truncated or corrupted"
    if case == "wrong-model":
        model = load_model(MODEL, torch.device("cpu"))
        torch.manual_seed(1)
        save_weights(MODEL, VAE(model.config).state_dict(), model.config.to_dict())
        return path, re.compile(re.escape(f"{path} was compressed with another model (sha256 ") + r"[0-9a-f]{12}"
                                + re.escape(f"...) than {MODEL} (sha256 ") + r"[0-9a-f]{12}"
                                + re.escape("...); decompress it with the model that compressed it"))
    header, words = unpack(data, "x")
    if case == "images-checksum":  # a file someone re-sealed: the container checksum is right, the content not
        header["images_sha256"] = "0" * 64
        message = f"{path}: the decoded images do not match the file's checksum of them"
    elif case == "crafted-count":
        header["n_images"] = 10 ** 9
        message = f"{path}: the header claims 1000000000 images in {len(words) * 32} bits"
    elif case == "crafted-layout":
        header["array"]["dtype"] = "|O"
        message = f"{path}: the header's array layout is invalid ("
    else:
        assert case == "words-replaced"
        words = words[::-1].copy()
        message = f"{path}: the compressed data does not decode with this model and these settings"
    path.write_bytes(pack(words, {k: v for k, v in header.items() if k != "format_version"}))
    return path, re.compile(re.escape(message) + ".*")


@pytest.mark.parametrize("case", ["truncated", "bit-flip", "wrong-model", "images-checksum", "crafted-count",
                                  "crafted-layout", "words-replaced"])
def test_damaged_or_foreign_files_are_refused_and_nothing_is_written(work_dir, digits, capsys, case):
    path, message = damaged_file(case, work_dir, digits, capsys)
    before = sorted(p.name for p in work_dir.iterdir())
    code, out, err = run_command(capsys, decompress, path, "-o", work_dir / "out.npy")
    pattern = message if isinstance(message, re.Pattern) else re.compile(re.escape(message))
    assert code == EXIT_USER_ERROR and out == []
    assert len(err) == 1 and pattern.fullmatch(err[0].removeprefix("error: ")), err
    assert sorted(p.name for p in work_dir.iterdir()) == before  # no output, no temporary file


def bad_compress_input(case: str, root: Path, digits: np.ndarray) -> tuple[list, str]:
    if case == "missing":
        return [root / "absent.npy"], f"{root / 'absent.npy'}: cannot be read (No such file or directory)"
    if case == "png":
        (root / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        return [root / "digit.png"], f"{root / 'digit.png'}: not a .npy file nor an IDX image file"
    if case == "wrong-shape":
        np.save(root / "x.npy", np.zeros((4, 30), dtype=np.uint8))
        return [root / "x.npy"], f"{root / 'x.npy'}: array of shape (4, 30); expected [28, 28], [N, 28, 28] or [N, 784]"
    if case == "nan":
        np.save(root / "x.npy", np.full((28, 28), np.nan, dtype=np.float32))
        return [root / "x.npy"], f"{root / 'x.npy'}: pixels include NaN or infinity"
    if case == "strings":
        np.save(root / "x.npy", np.full((28, 28), "a"))
        return [root / "x.npy"], f"{root / 'x.npy'}: pixels of type <U1; expected booleans, integers or floats"
    if case == "grey-out-of-range":
        np.save(root / "x.npy", np.full((28, 28), 300, dtype=np.int16))
        return [root / "x.npy", "--binarize", "0.5"], f"{root / 'x.npy'}: grey pixels must lie in [0, 255] (got 300 to 300)"
    assert case == "output-exists"
    np.save(root / "digits.npy", digits)
    (root / "digits.npy.vbb").write_text("keep me")
    return [root / "digits.npy"], f"{root / 'digits.npy.vbb'} exists; pass --force to overwrite it"


@pytest.mark.parametrize("case", ["missing", "png", "wrong-shape", "nan", "strings", "grey-out-of-range",
                                  "output-exists"])
def test_bad_images_are_refused_with_one_line(work_dir, digits, capsys, case):
    args, message = bad_compress_input(case, work_dir, digits)
    before = {p.name: p.read_bytes() for p in work_dir.iterdir() if p.is_file()}
    code, out, err = run_command(capsys, compress, *args)
    assert code == EXIT_USER_ERROR and out == [] and err == [f"error: {message}"]
    assert {p.name: p.read_bytes() for p in work_dir.iterdir() if p.is_file()} == before


def test_force_overwrites_and_decompress_needs_a_name_without_vbb(work_dir, digits, capsys):
    np.save(work_dir / "digits.npy", digits)
    assert run_command(capsys, compress, work_dir / "digits.npy")[0] == 0
    shutil.copy(work_dir / "digits.npy.vbb", work_dir / "digits.bin")
    code, _, err = run_command(capsys, decompress, work_dir / "digits.bin")
    assert code == EXIT_USER_ERROR and err == [f"error: {work_dir / 'digits.bin'} does not end in .vbb or .vlc; name the output with -o"]
    code, _, err = run_command(capsys, decompress, work_dir / "digits.npy.vbb")
    assert code == EXIT_USER_ERROR and err == [f"error: {work_dir / 'digits.npy'} exists; pass --force to overwrite it"]
    original = (work_dir / "digits.npy").read_bytes()
    (work_dir / "digits.npy").write_bytes(b"stale")
    assert run_command(capsys, decompress, work_dir / "digits.npy.vbb", "--force")[0] == 0
    assert (work_dir / "digits.npy").read_bytes() == original


def test_help_and_the_installed_commands(work_dir):
    for name in ("vaepipe-compress", "vaepipe-decompress"):
        installed = shutil.which(name, path=str(Path(sys.executable).parent))
        if installed is None:
            pytest.skip(f"{name} is not installed: `make setup` installs the package with its scripts")
        result = subprocess.run([installed, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and f"usage: {name}" in result.stdout and "--model" in result.stdout
        result = subprocess.run([installed, str(work_dir / "absent.vbb")], capture_output=True, text=True)
        assert result.returncode == EXIT_USER_ERROR
        assert result.stderr.strip() == f"error: {work_dir / 'absent.vbb'}: cannot be read (No such file or directory)"

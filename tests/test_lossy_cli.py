"""`vaepipe-compress --step` / `vaepipe-decompress` on grey digits in .npy, IDX and PNG-folder form, with the model
of the tiny run: the decoder's images come back in the input's form, and bad input is one line, nothing written."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_command
from vaepipe.codecs.cli import compress, decompress
from vaepipe.codecs.container import pack, unpack
from vaepipe.codecs.lossy import decode_file
from vaepipe.core.artifacts import file_sha256, save_weights
from vaepipe.core.cli import EXIT_USER_ERROR
from vaepipe.data.datasets import load_split
from vaepipe.vae.model import VAE, load_model

MODEL = "models/vae.safetensors"


@pytest.fixture(scope="module")
def grey(mnist_raw) -> np.ndarray:
    """30 test digits as 8-bit grey levels [30, 28, 28]."""
    return (load_split(mnist_raw, "test")[0][:30] * 255).round().to(torch.uint8).view(-1, 28, 28).numpy()


def decoded_by_the_library(path) -> torch.Tensor:
    model = load_model(MODEL, torch.device("cpu"))
    return decode_file(path.read_bytes(), str(path), model, MODEL, file_sha256(MODEL))[2]


@pytest.mark.parametrize("kind", ["uint8", "float32-flat", "bool", "idx"])
def test_arrays_come_back_as_the_decoder_s_images_in_their_form(work_dir, grey, capsys, kind):
    arrays = {"uint8": grey, "float32-flat": grey.reshape(-1, 784).astype(np.float32) / 255, "bool": grey > 127}
    if kind == "idx":
        original = work_dir / "digits-idx3-ubyte"
        original.write_bytes(b"".join(v.to_bytes(4, "big") for v in (0x803, *grey.shape)) + grey.tobytes())
    else:
        original = work_dir / "digits.npy"
        np.save(original, arrays[kind])
    code, out, err = run_command(capsys, compress, original, "--step", "0.5")
    compressed = original.with_name(original.name + ".vlc")
    assert code == 0 and err == [] and compressed.exists()
    size = len(compressed.read_bytes())
    assert re.fullmatch(rf"{re.escape(str(original))}: 30 images -> {re.escape(str(compressed))}, {size:,} bytes: "
                        rf"{size / 30:.2f} bytes/image \(\d+\.\d\d of codes\), step 0\.5, .* as the entropy model", out[0])
    back = work_dir / ("back-idx3-ubyte" if kind == "idx" else "back.npy")
    code, out, err = run_command(capsys, decompress, compressed, "-o", back)
    assert code == 0 and err == [] and out == [f"{compressed}: 30 images (lossy, step 0.5) -> {back}"]
    decoded = decoded_by_the_library(compressed)
    if kind == "idx":
        array = np.frombuffer(back.read_bytes()[16:], dtype=np.uint8).reshape(grey.shape)
        assert back.read_bytes()[:16] == original.read_bytes()[:16]
    else:
        array = np.load(back)
        expected_dtype = np.float32 if kind == "bool" else arrays[kind].dtype
        assert array.shape == arrays[kind].shape and array.dtype == expected_dtype
    scale = 255 if array.dtype == np.uint8 else 1
    expected = decoded.numpy().reshape(array.shape) * scale
    np.testing.assert_array_equal(array, np.rint(expected) if scale == 255 else expected.astype(array.dtype))


def test_a_folder_of_pngs_comes_back_as_pngs_of_the_same_names(work_dir, grey, capsys):
    folder = work_dir / "scans"
    folder.mkdir()
    names = [f"digit-{i}.png" for i in range(5)]
    for name, picture in zip(names, grey):
        Image.fromarray(picture).convert("RGB").save(folder / name)  # colour files are read as their luminance
    (folder / "notes.txt").write_text("not an image")
    code, out, err = run_command(capsys, compress, folder, "--step", "1")
    assert code == 0 and err == [] and (work_dir / "scans.vlc").exists()
    code, out, err = run_command(capsys, decompress, work_dir / "scans.vlc", "-o", work_dir / "decoded")
    assert code == 0 and err == []
    assert sorted(p.name for p in (work_dir / "decoded").iterdir()) == names
    decoded = decoded_by_the_library(work_dir / "scans.vlc")
    for name, image in zip(names, decoded):
        picture = np.asarray(Image.open(work_dir / "decoded" / name))
        assert picture.shape == (28, 28)
        np.testing.assert_array_equal(picture, np.rint(image.numpy().reshape(28, 28) * 255))


def bad_lossy_input(case: str, root, grey) -> tuple[list, str]:
    np.save(root / "digits.npy", grey)
    if case == "step":
        return [root / "digits.npy", "--step", "9"], None
    if case == "with-binarize":
        return [root / "digits.npy", "--step", "1", "--binarize", "0.5"], \
            "--binarize is for lossless compression; --step codes grey images as they are"
    if case == "image-size":
        np.save(root / "big.npy", np.zeros((3, 32, 32), dtype=np.uint8))
        return [root / "big.npy", "--step", "1"], \
            f"{root / 'big.npy'}: array of shape (3, 32, 32); expected [28, 28], [N, 28, 28] or [N, 784]"
    if case == "png-size":
        (root / "pngs").mkdir()
        Image.new("L", (32, 32)).save(root / "pngs/a.png")
        return [root / "pngs", "--step", "1"], f"{root / 'pngs/a.png'}: a 32x32 image; expected 28x28"
    if case == "empty-folder":
        (root / "empty").mkdir()
        return [root / "empty", "--step", "1"], f"{root / 'empty'}: a folder with no .png files"
    assert case == "float-range"
    np.save(root / "x.npy", np.full((28, 28), 2.0, dtype=np.float32))
    return [root / "x.npy", "--step", "1"], f"{root / 'x.npy'}: grey pixels must lie in [0, 1] (got 2 to 2)"


@pytest.mark.parametrize("case", ["step", "with-binarize", "image-size", "png-size", "empty-folder", "float-range"])
def test_bad_lossy_input_is_one_line_and_writes_nothing(work_dir, grey, capsys, case):
    args, message = bad_lossy_input(case, work_dir, grey)
    before = sorted(str(p) for p in work_dir.rglob("*"))
    code, out, err = run_command(capsys, compress, *args)
    assert code != 0 and out == []
    if message is None:  # argparse's own: usage and the error
        assert err[-1] == "vaepipe-compress: error: argument --step: 9 is not in [0.001, 8.0]"
    else:
        assert code == EXIT_USER_ERROR and err == [f"error: {message}"]
    assert sorted(str(p) for p in work_dir.rglob("*")) == before


@pytest.mark.parametrize("case", ["byte-flipped", "wrong-model", "crafted-layout"])
def test_damaged_or_foreign_lossy_files_are_refused_and_nothing_is_written(work_dir, grey, capsys, case):
    np.save(work_dir / "digits.npy", grey)
    run_command(capsys, compress, work_dir / "digits.npy", "--step", "0.75")
    path = work_dir / "digits.npy.vlc"
    data = path.read_bytes()
    if case == "byte-flipped":
        path.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
        message = f"{path}: checksum mismatch: the file is truncated or corrupted"
    elif case == "wrong-model":
        model = load_model(MODEL, torch.device("cpu"))
        torch.manual_seed(1)
        save_weights(MODEL, VAE(model.config).state_dict(), model.config.to_dict())
        message = f"{path} was compressed with another model"
    else:
        header, words = unpack(data, "x")
        header["array"]["names"] = ["../escape.png"] * 30
        header["array"]["format"] = "png"
        path.write_bytes(pack(words, {k: v for k, v in header.items() if k != "format_version"}))
        message = f"{path}: the header's array layout is invalid"
    before = sorted(str(p) for p in work_dir.rglob("*"))
    code, out, err = run_command(capsys, decompress, path, "-o", work_dir / "out")
    assert code == EXIT_USER_ERROR and out == [] and len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert sorted(str(p) for p in work_dir.rglob("*")) == before

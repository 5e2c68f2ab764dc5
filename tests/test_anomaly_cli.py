"""`vaepipe-anomaly` on images made here, with the model and detector of the tiny run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT, run_command
from vaepipe.anomaly.cli import main
from vaepipe.anomaly.detector import Detector, image_statistics, scores_from
from vaepipe.core.artifacts import save_weights
from vaepipe.core.cli import EXIT_PIPE_CLOSED, EXIT_USER_ERROR
from vaepipe.data.datasets import load_split
from vaepipe.vae.model import VAE, load_model

DETECTOR = "models/anomaly_detector.safetensors"
MODEL = "models/vae.safetensors"


def save_png(path: Path, image: torch.Tensor) -> Path:
    Image.fromarray(np.round(image.view(28, 28).numpy() * 255).astype(np.uint8)).save(path)
    return path


def test_png_npy_and_idx_give_the_library_s_scores_and_verdicts(work_dir, tiny_run, capsys):
    test_x, _ = load_split(tiny_run / "data/raw", "test")
    digits = (test_x[:3] * 255).round() / 255  # what a PNG can hold
    pngs = [save_png(work_dir / f"digit{i}.png", x) for i, x in enumerate(digits)]
    np.save(work_dir / "digits.npy", (digits.view(3, 28, 28).numpy() * 255).round().astype(np.uint8))
    white = save_png(work_dir / "white.png", torch.ones(784))
    code, out, err = run_command(capsys, main, *pngs, work_dir / "digits.npy", white)
    assert code == 0 and err == []

    detector = Detector.load(DETECTOR)
    model = load_model(MODEL, torch.device("cpu"))
    expected = scores_from(image_statistics(model, digits, detector.k, detector.precision),
                           detector.profile)[detector.score]
    threshold = detector.thresholds[detector.score]
    assert out[0].startswith(f"# score: {detector.score}; anomalous above {threshold:.4g}")
    rows = [line.split("\t") for line in out[1:]]
    assert [r[0] for r in rows] == [str(p) for p in pngs] + [f"{work_dir / 'digits.npy'}[{i}]" for i in range(3)] + [
        str(white)]
    values = [float(r[1]) for r in rows]
    np.testing.assert_allclose(values[:3], expected, rtol=1e-3)
    np.testing.assert_allclose(values[3:6], values[:3], rtol=1e-6)  # the same images from an array
    assert [r[2] for r in rows] == ["anomalous" if v > threshold else "normal" for v in values]
    assert rows[-1][2] == "anomalous"  # an all-white square is no digit


def test_a_whole_idx_file_flags_about_the_chosen_share_of_normal_images(work_dir, tiny_run, capsys):
    code, out, _ = run_command(capsys, main, tiny_run / "data/raw/t10k-images-idx3-ubyte")
    assert code == 0 and len(out) == 1 + 10000
    flagged = np.mean([line.endswith("\tanomalous") for line in out[1:]])
    assert 0.01 < flagged < 0.15  # 5 % of held-out normal images, give or take a tiny model's noise


def test_another_score_can_be_asked_for(work_dir, capsys):
    save_png(work_dir / "blank.png", torch.zeros(784))
    code, out, _ = run_command(capsys, main, "--score", "nll", work_dir / "blank.png")
    assert code == 0 and out[0].startswith("# score: nll;")


class Exploit:
    """Unpickling this creates `path`: proof that a loader ran code from the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def bad_input(case: str, root: Path) -> tuple[list[str], str]:
    """Arguments for a bad case, and the one error line expected."""
    if case == "wrong-size":
        Image.new("L", (32, 32)).save(root / "big.png")
        return [str(root / "big.png")], f"{root / 'big.png'}: image is 32x32 pixels; expected 28x28"
    if case == "not-an-image":
        (root / "notes.png").write_text("hello")
        return [str(root / "notes.png")], re.compile(re.escape(f"{root / 'notes.png'}: not an image Pillow can read") + ".*")
    if case == "missing-image":
        return [str(root / "absent.png")], f"{root / 'absent.png'}: cannot be read (No such file or directory)"
    if case == "missing-model":
        os.remove(MODEL)
        save_png(root / "d.png", torch.zeros(784))
        return [str(root / "d.png")], f"{MODEL}: model file is missing; run `dvc repro train` first"
    if case == "missing-detector":
        os.remove(DETECTOR)
        save_png(root / "d.png", torch.zeros(784))
        return [str(root / "d.png")], f"{DETECTOR}: detector file is missing; run `dvc repro anomaly` first"
    if case == "other-model":
        model = load_model(MODEL, torch.device("cpu"))
        save_weights(MODEL, VAE(model.config).state_dict(), model.config.to_dict())
        save_png(root / "d.png", torch.zeros(784))
        return [str(root / "d.png")], (f"{DETECTOR} was made for another model than {MODEL}; "
                                       "run `dvc repro anomaly`")
    if case == "npy-out-of-range":
        np.save(root / "x.npy", np.full((2, 28, 28), 3.0))
        return [str(root / "x.npy")], f"{root / 'x.npy'}: float pixels must lie in [0, 1] (got 3 to 3)"
    if case == "npy-wrong-shape":
        np.save(root / "x.npy", np.zeros((5, 30), dtype=np.uint8))
        return [str(root / "x.npy")], (f"{root / 'x.npy'}: array of shape (5, 30); expected [28, 28], [N, 28, 28] "
                                       "or [N, 784]")
    assert case == "npy-pickle"
    np.save(root / "x.npy", np.array([Exploit(root / "pwned")], dtype=object), allow_pickle=True)
    return [str(root / "x.npy")], re.compile(re.escape(f"{root / 'x.npy'}: not a plain .npy array (") + ".+")


@pytest.mark.parametrize("case", ["wrong-size", "not-an-image", "missing-image", "missing-model", "missing-detector",
                                  "other-model", "npy-out-of-range", "npy-wrong-shape", "npy-pickle"])
def test_bad_input_is_one_line_and_exit_2(work_dir, capsys, case):
    args, message = bad_input(case, work_dir)
    code, out, err = run_command(capsys, main, *args)
    pattern = message if isinstance(message, re.Pattern) else re.compile(re.escape(message))
    assert code == EXIT_USER_ERROR and out == []
    assert len(err) == 1 and pattern.fullmatch(err[0].removeprefix("error: ")), err
    assert not (work_dir / "pwned").exists()


def test_a_reader_that_stops_early_ends_the_command_quietly(work_dir, tiny_run):
    """`vaepipe-anomaly FILE | head -2`, as docs/commands.md shows it: two lines, then no traceback."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))
    images = tiny_run / "data/raw/t10k-images-idx3-ubyte"
    with subprocess.Popen([sys.executable, "-m", "vaepipe.anomaly.cli", str(images)],
                          cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as command:
        lines = [command.stdout.readline() for _ in range(2)]
        command.stdout.close()
        assert command.wait(timeout=120) == EXIT_PIPE_CLOSED
        assert command.stderr.read() == ""
    assert lines[0].startswith("# score: ") and lines[1].split("\t")[-1] in ("normal\n", "anomalous\n")


def test_help_and_the_installed_command(work_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "vaepipe.anomaly.cli", "--help"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0 and "usage: vaepipe-anomaly" in result.stdout and "--detector" in result.stdout
    installed = shutil.which("vaepipe-anomaly", path=str(Path(sys.executable).parent))
    if installed is None:
        pytest.skip("vaepipe-anomaly is not installed: `make setup` installs the package with its scripts")
    result = subprocess.run([installed, str(work_dir / "absent.png")], capture_output=True, text=True)
    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.strip() == f"error: {work_dir / 'absent.png'}: cannot be read (No such file or directory)"

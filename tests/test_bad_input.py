"""Bad input, driven through the stage scripts (issue 4). Every case must end in exactly one line
`error: <cause>` on stderr and exit code 2, leave no temporary or half-written file, and leave every file
that was there before as it was: not even rewritten (the same inode, size and modification time).

Most cases run a stage in-process (fast, and lets the test cut the official download URLs off);
a few run it as a real `python stages/<stage>.py` to check what a user's terminal shows."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gzip
import os
import pickle
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from conftest import REPO_ROOT, STAGES, run_stage_script, set_key
from vaepipe.core.artifacts import load_tensors, save_weights
from vaepipe.core.cli import EXIT_USER_ERROR
from vaepipe.data import datasets as data
from vaepipe.vae.model import VAE, VAEConfig

CONFIG = VAEConfig(arch="mlp", latent_dim=4, hidden=(32,))
MODEL = "models/vae.safetensors"
UNREADABLE_MODEL = re.compile(rf"{re.escape(MODEL)}: not a readable vaepipe model file \(.+\)")
LABELS = "t10k-labels-idx1-ubyte"
# Port 9 on loopback refuses connections: a dead source that never reaches the internet.
UNREACHABLE = "http://127.0.0.1:9/"
# tqdm redraws the train stage's progress bar on stderr; its frames are not error lines.
PROGRESS_FRAME = re.compile(r"train: +\d+%\|")


def edit_params(changes: dict[str, object]) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for dotted, value in changes.items():
        set_key(params, dotted, value)
    replace_file("params.yaml", yaml.safe_dump(params, sort_keys=False).encode())


def unshared(path: str | Path) -> Path:
    """`path` with its hard link to the good run's file removed, for the test to write a new file there."""
    Path(path).unlink(missing_ok=True)
    return Path(path)


def replace_file(path: str | Path, content: bytes) -> None:
    unshared(path).write_bytes(content)


@pytest.fixture
def work(tiny_run, tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh copy of the good working directory, made the current directory.

    Its files are hard links to the good run's, as a copy would write 116 MB a test: a test changes a file by
    replacing it (`unshared`, `replace_file`), as the stages replace theirs (vaepipe.core.artifacts). A write into
    a shared file would reach every later test, so it fails the test that made it."""
    root = tmp_path / "work"
    shutil.copytree(tiny_run, root, copy_function=os.link)
    shared = {path: path.stat().st_mtime_ns for path in tiny_run.rglob("*") if path.is_file()}
    monkeypatch.chdir(root)
    yield root
    written = sorted(path.relative_to(tiny_run).as_posix() for path, mtime in shared.items()
                     if path.stat().st_mtime_ns != mtime)
    assert written == [], f"written in place, through a hard link into the good run: {written}"


@pytest.fixture
def offline(monkeypatch):
    """The official sources of both datasets replaced by a dead local one, so that no download reaches the
    internet."""
    for name, spec in data.DATASETS.items():
        monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(spec, mirrors=(UNREACHABLE,)))


def snapshot(root: Path, stage: str) -> dict[str, tuple[int, int, int]]:
    """Each file's inode, size and modification time: a file written in place, even with the same bytes, gets a
    new modification time, and one replaced a new inode."""
    # A failed train run may leave its checkpoint and in-progress curves, for the next run to resume from.
    skipped = ("checkpoints/",) if stage == "train" else ()
    files = {}
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        if path.is_file() and not name.startswith(skipped):
            status = path.stat()
            files[name] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return files


def run_in_process(stage: str, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_stage_script(stage)
    return exited.value.code, capsys.readouterr().err


def run_subprocess(stage: str, env: dict) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), **env)
    result = subprocess.run([sys.executable, str(STAGES / f"{stage}.py")], env=env, capture_output=True, text=True,
                            preexec_fn=without_root_permission_override if os.geteuid() == 0 else None)
    return result.returncode, result.stderr


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def without_root_permission_override() -> None:
    """In the child of a root process, before it starts the stage: drop the capabilities by which root writes
    where the permission bits say no, so that a read-only directory is read-only to the stage too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


@pytest.fixture
def refused(work, capsys):
    """`refused(stage, message)` runs the stage in the test's copy of the good directory (the current
    directory, which the test has broken first) and checks the four promises.

    `message` is the exact text after `error: `, or a compiled pattern it must match in full. With `env`,
    the stage runs as a subprocess with those extra environment variables."""
    def check(stage: str, message: str | re.Pattern, env: dict | None = None) -> None:
        before = snapshot(work, stage)
        code, err = run_in_process(stage, capsys) if env is None else run_subprocess(stage, env)
        lines = [line for line in err.splitlines() if line.strip() and not PROGRESS_FRAME.match(line)]
        pattern = message if isinstance(message, re.Pattern) else re.compile(re.escape(message))
        assert code == EXIT_USER_ERROR, err
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert pattern.fullmatch(lines[0].removeprefix("error: ")), lines[0]
        assert list(work.rglob("*.tmp")) == []
        after = snapshot(work, stage)
        assert sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name)) == []
    return check


# --- data: download -------------------------------------------------------------------------------

def download_failure(first_source: str, reason: str) -> re.Pattern:
    """The download error when the user's mirror fails for `reason` and the (dead) official source after it."""
    return re.compile(rf"could not get mnist file {LABELS}: {first_source}{LABELS}\.gz: {reason}; "
                      rf"{re.escape(UNREACHABLE)}{LABELS}\.gz: unreachable \(.+\)\. "
                      r"Set VAE_DATA_MIRROR to a directory or URL whose mnist/ folder holds the \.gz files .+")


def corrupt_stream(raw: bytes) -> bytes:
    gz = bytearray(gzip.compress(raw))
    gz[len(gz) // 2] ^= 0xFF
    return bytes(gz)


@pytest.mark.parametrize("make_gz, reason", [
    (None, rf"{LABELS}\.gz not found"),
    (lambda raw: gzip.compress(raw)[:-100], r"not a complete gzip file \(Compressed file ended .+\)"),
    (corrupt_stream, r"not a complete gzip file \(.+\)"),
    (lambda raw: gzip.compress(raw[:-1] + b"\x07"), r"md5 of decompressed bytes is [0-9a-f]{32}, expected "
                                                    + data.DATASETS["mnist"].md5[LABELS]),
], ids=["missing-file", "truncated-gz", "corrupt-gzip-stream", "md5-mismatch"])
def test_download_from_a_bad_mirror(refused, offline, tmp_path, monkeypatch, make_gz, reason):
    raw = Path("data/raw", LABELS).read_bytes()
    Path("data/raw", LABELS).unlink()  # the other three files are there and verified, so kept
    mirror = tmp_path / "mirror"
    (mirror / "mnist").mkdir(parents=True)
    if make_gz:
        (mirror / "mnist" / f"{LABELS}.gz").write_bytes(make_gz(raw))
    monkeypatch.setenv(data.MIRROR_ENV, str(mirror))
    refused("download", download_failure(re.escape(mirror.as_uri() + "/mnist/"), reason))


def test_download_mirror_directory_absent(refused, offline, tmp_path, monkeypatch):
    Path("data/raw", LABELS).unlink()
    absent = tmp_path / "no-such-mirror"
    monkeypatch.setenv(data.MIRROR_ENV, str(absent))
    refused("download", download_failure(re.escape(absent.as_uri() + "/mnist/"),
                                         rf"mirror directory {re.escape(str(absent / 'mnist'))} does not exist"))


def test_download_mirror_url_unreachable(refused, offline, monkeypatch):
    Path("data/raw", LABELS).unlink()
    monkeypatch.setenv(data.MIRROR_ENV, UNREACHABLE.rstrip("/"))
    refused("download", download_failure(re.escape(UNREACHABLE + "mnist/"), r"unreachable \(.*Connection refused.*\)"))


@pytest.mark.parametrize("mirror, reason", [
    ("http://bad host", r"malformed URL \(URL can't contain control characters\. .+\)"),
    ("http://[::1", r"malformed URL \(Invalid IPv6 URL\)"),
], ids=["space-in-host", "broken-ipv6"])
def test_download_mirror_url_malformed(refused, offline, monkeypatch, mirror, reason):
    Path("data/raw", LABELS).unlink()
    monkeypatch.setenv(data.MIRROR_ENV, mirror)
    refused("download", download_failure(re.escape(mirror + "/mnist/"), reason))


@pytest.fixture
def cut_connection_server():
    """A local HTTP server that promises 1000 bytes, sends 10 and hangs up; it answers one request, then stops."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def answer_once():
        with server, contextlib.suppress(OSError):
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    thread.join(timeout=30)


def test_download_connection_cut(refused, offline, monkeypatch, cut_connection_server):
    Path("data/raw", LABELS).unlink()
    monkeypatch.setenv(data.MIRROR_ENV, cut_connection_server)
    refused("download", download_failure(re.escape(cut_connection_server + "/mnist/"),
                                         r"connection cut after 10 bytes, 990 more expected"))


def test_download_in_a_real_process_without_internet(refused, tmp_path):
    """What a user sees: no mirror, no network (the official URLs go through a dead proxy here)."""
    shutil.rmtree("data/raw")
    absent = tmp_path / "no-such-mirror"
    dead_proxy = {name: UNREACHABLE for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    official = "; ".join(rf"{re.escape(url)}train-images-idx3-ubyte\.gz: unreachable \(.+\)"
                         for url in data.DATASETS["mnist"].mirrors)
    mirror = rf"{re.escape(absent.as_uri())}/mnist/train-images-idx3-ubyte\.gz"
    refused("download", re.compile(
        rf"could not get mnist file train-images-idx3-ubyte: {mirror}: mirror directory "
        rf"{re.escape(str(absent / 'mnist'))} does not exist; {official}\. Set VAE_DATA_MIRROR .+"),
        env={data.MIRROR_ENV: str(absent), "no_proxy": "", "NO_PROXY": "", **dead_proxy})


# --- data: loading --------------------------------------------------------------------------------

def idx_header(magic: int, *dims: int) -> bytes:
    return struct.pack(f">{1 + len(dims)}I", magic, *dims)


@pytest.mark.parametrize("stage, split", [("evaluate", "test"), ("train", "train")])
@pytest.mark.parametrize("case", ["missing-file", "truncated-idx", "wrong-magic", "wrong-image-size",
                                  "label-count"])
def test_bad_idx_file(refused, stage, split, case):
    images_name, labels_name = data.SPLIT_FILES[split]
    images, labels = Path("data/raw", images_name), Path("data/raw", labels_name)
    n = int.from_bytes(labels.read_bytes()[4:8], "big")
    if case == "missing-file":
        images.unlink()
        message = f"{images}: file is missing; run `dvc repro download` first"
    elif case == "truncated-idx":
        replace_file(images, images.read_bytes()[: images.stat().st_size // 2])
        message = re.compile(rf"{images}: malformed IDX file \(.+\)")
    elif case == "wrong-magic":
        replace_file(images, idx_header(data.IDX_LABELS_MAGIC) + images.read_bytes()[4:])
        message = f"{images}: wrong IDX magic number 0x00000801, expected 0x00000803"
    elif case == "wrong-image-size":
        replace_file(images, idx_header(data.IDX_IMAGES_MAGIC, 10, 32, 32) + bytes(10 * 32 * 32))
        message = f"{images}: images are (32, 32), expected (28, 28)"
    else:
        replace_file(labels, idx_header(data.IDX_LABELS_MAGIC, n - 1) + labels.read_bytes()[8:-1])
        message = f"{labels}: {n - 1} labels for {n} images"
    refused(stage, message)


# --- params ---------------------------------------------------------------------------------------

BAD_PARAMS = [
    ({"latnet_dim": 32}, "`latnet_dim` is not a known parameter; did you mean `latent_dim`?"),
    ({"latent_dim": "abc"}, "`latent_dim` must be an int, got 'abc'"),
    ({"latent_dim": 0}, "`latent_dim` must be > 0"),
    ({"latent_dim": -4}, "`latent_dim` must be > 0"),
    ({"train.lr": 0}, "`train.lr` must be > 0"),
    ({"train.lr": -0.001}, "`train.lr` must be > 0"),
    ({"train.epochs": 0}, "`train.epochs` must be > 0"),
    ({"train.batch_size": 0}, "`train.batch_size` must be > 0"),
    ({"train.beta": -0.5}, "`train.beta` must be >= 0"),
    ({"evaluate.k": 0}, "`evaluate.k` must be > 0"),
    ({"dataset": "cifar10"}, "`dataset` must be one of mnist, fashion-mnist"),
    ({"train.arch": "cnn"}, "`train.arch` must be one of mlp, conv"),
    ({"train.arch": "conv", "train.hidden": [8, 16, 32]},
     "`train.hidden` must list 1 or 2 channel counts for arch conv (28 -> 14 -> 7)"),
    ({"train.prior": "flow"}, "`train.prior` must be one of normal, mog, vamp"),
    ({"train.prior_components": 0}, "`train.prior_components` must be > 0"),
    ({"train.objective": "vae"}, "`train.objective` must be one of elbo, iwae"),
    ({"train.objective": "iwae", "train.samples": 1}, "`train.samples` must be >= 2 for objective iwae"),
    ({"train.samples": 0}, "`train.samples` must be >= 1"),
    ({"train.keep": "first"}, "`train.keep` must be one of best, last"),
    ({"train.patience": -1}, "`train.patience` must be >= 0 (0 = never stop early)"),
    ({"device": "tpu"}, "`device` must be one of auto, cpu, cuda"),
    ({"anomaly.ood_dataset": "mnist"}, "`anomaly.ood_dataset` is mnist, the training dataset itself; use other or "
                                       "the other dataset"),
    ({"anomaly.ood_dataset": "svhn"}, "`anomaly.ood_dataset` must be one of other, mnist, fashion-mnist"),
    ({"anomaly.false_positive_rate": 1.5}, "`anomaly.false_positive_rate` must be between 0 and 1"),
    ({"anomaly.n_fit": 3}, "`anomaly.n_fit` must be >= 16 (twice the typicality mixture's components)"),
    ({"anomaly.k": 0}, "`anomaly.k` must be > 0"),
    ({"downstream.unlabelled": 5}, "`downstream.unlabelled` must be >= 10 (the label-spreading graph's neighbours)"),
    ({"cluster.n_clusters": 1}, "`cluster.n_clusters` must be >= 2"),
    ({"cluster.umap_epochs": 0}, "`cluster.umap_epochs` must be > 0"),
    ({"cluster.self_label_epochs": -1}, "`cluster.self_label_epochs` must be >= 0 (0 = no self-labelling)"),
    ({"cluster.self_label_subset": -5}, "`cluster.self_label_subset` must be >= 0 (0 = all images)"),
    ({"cluster.overclusters": 5}, "`cluster.overclusters` must be >= cluster.n_clusters (10), the clusters they are "
                                 "merged into"),
    ({"cluster.merge_cap": 0.5}, "`cluster.merge_cap` must be >= 1 (times the mean cluster size)"),
    ({"cluster.precision": "fp16"}, "`cluster.precision` must be one of auto, fp32, bf16"),
    ({"generate.embedding": "isomap"}, "`generate.embedding` must be one of umap, pca, tsne"),
    ({"compress.latent_precision": 20}, "`compress.latent_precision` must be between 1 and 16 (bits)"),
    ({"judge.epochs": 0}, "`judge.epochs` must be > 0"),
    ({"judge.lr": "fast"}, "`judge.lr` must be a float, got 'fast'"),
    ({"generate.samplers": ["prior", "flow"]}, "`generate.samplers[1]` must be one of prior, gmm, learned"),
    ({"generate.samplers": ["gmm", "gmm"]}, "`generate.samplers` must be a non-empty list of distinct samplers "
                                            "from prior, gmm, learned"),
    ({"style.sampler": "gmm"}, "`style.sampler` must be one of prior, learned"),
    ({"code_prior.kind": "vae"}, "`code_prior.kind` must be one of mixture, diffusion, flow"),
    ({"code_prior.components": 0}, "`code_prior.components` must be > 0"),
    ({"code_prior.steps": 0}, "`code_prior.steps` must be > 0"),
    ({"code_prior.lr": -0.1}, "`code_prior.lr` must be > 0"),
    ({"code_prior.sample_steps": 0}, "`code_prior.sample_steps` must be > 0"),
    ({"code_prior.round_trips": -1}, "`code_prior.round_trips` must be >= 0"),
    ({"code_prior.temperature": 0}, "`code_prior.temperature` must be > 0"),
    ({"code_prior.em_iterations": 0}, "`code_prior.em_iterations` must be > 0"),
    ({"code_prior.hidden": 1.5}, "`code_prior.hidden` must be an int, got 1.5"),
    ({"generate.n_judged": 1}, "`generate.n_judged` must be >= 2 (a covariance of the features needs two)"),
    ({"generate.n_samples": 300}, "`generate.n_samples` must be > 0 and at most generate.n_judged (200): the grid "
                                  "shows judged samples"),
    ({"generate.confidence": 1.0}, "`generate.confidence` must be between 0 and 1"),
    ({"train.precision": "fp16"}, "`train.precision` must be one of auto, fp32, bf16"),
    ({"evaluate.precision": 16}, "`evaluate.precision` must be a str, got 16"),
    ({"judge.precision": "fp16"}, "`judge.precision` must be one of auto, fp32, bf16"),
    ({"style.latent_dim": 0}, "`style.latent_dim` must be > 0"),
    ({"style.hidden": []}, "`style.hidden` must be a non-empty list of positive layer widths"),
    ({"style.n_judged": 9}, "`style.n_judged` must be >= 10 (a sample of every class)"),
    ({"style.n_styles": 21}, "`style.n_styles` must be > 0 and at most style.n_judged / 10 (20): the figures show "
                             "judged images"),
    ({"style.samples_per_class": 0}, "`style.samples_per_class` must be > 0 and at most style.n_judged / 10 (20): "
                                     "the figures show judged images"),
    ({"explore.directions": 0}, "`explore.directions` must be > 0 (capped at the model's latent_dim)"),
    ({"explore.frames": 1}, "`explore.frames` must be between 2 and 64 (both ends of the walk included)"),
    ({"explore.frames": 65}, "`explore.frames` must be between 2 and 64 (both ends of the walk included)"),
]


@pytest.mark.parametrize("changes, message", BAD_PARAMS,
                         ids=[",".join(f"{k}={v}" for k, v in changes.items()) for changes, _ in BAD_PARAMS])
def test_bad_params(refused, changes, message):
    edit_params(changes)
    refused("evaluate", f"params.yaml: {message}")


@pytest.mark.parametrize("budgets", [[5], [20, 20], [0]])
def test_label_budgets_below_one_per_class_or_repeated(refused, budgets):
    edit_params({"downstream.label_budgets": budgets})
    refused("downstream", "params.yaml: `downstream.label_budgets` must be a non-empty list of distinct label "
                          "counts, each >= 10 (a label per class)")


@pytest.mark.parametrize("stage, changes, message", [
    ("downstream", {"downstream.label_budgets": [60000]},  # the probes' training part: 59,800 images here
     r"`downstream\.label_budgets` has 60000: a balanced draw takes 6000 labels of class 0, which has only "
     r"59\d\d training images"),
    ("train", {"train.train_subset": 60000},
     re.escape("`train.train_subset` is 60000, but the training split (after validation) has only 59800")),
    ("evaluate", {"evaluate.test_subset": 20000},
     re.escape("`evaluate.test_subset` is 20000, but the test set has only 10000")),
    ("evaluate", {"evaluate.n_reconstructions": 101},
     re.escape("`evaluate.n_reconstructions` is 101, but the evaluated test set has only 100")),
    ("generate", {"generate.n_interpolations": 5001},
     re.escape("`generate.n_interpolations` is 5001, but the test set (two images a row) has only 5000")),
    ("downstream", {"downstream.unlabelled": 59790},
     re.escape("`downstream.unlabelled` is 59790, but the probes' training part less the 20 labelled codes "
               "has only 59780")),
    ("compress", {"compress.test_subset": 10001},
     re.escape("`compress.test_subset` is 10001, but the test set has only 10000")),
    ("lossy", {"lossy.test_subset": 10001},
     re.escape("`lossy.test_subset` is 10001, but the test set has only 10000")),
    ("corrupt", {"anomaly.n_val": 201},
     re.escape("`anomaly.n_val` is 201, but the validation split has only 200")),
    ("corrupt", {"anomaly.test_subset": 10001},
     re.escape("`anomaly.test_subset` is 10001, but the test set has only 10000")),
    ("anomaly", {"anomaly.n_fit": 60000},
     re.escape("`anomaly.n_fit` is 60000, but the training part of the training split has only 59800")),
    ("judge", {"judge.train_subset": 55001},
     re.escape("`judge.train_subset` is 55001, but the judge's training split has only 55000")),
    ("judge", {"judge.val_size": 60000},
     re.escape("`judge.val_size` is 60000, but the training set less one image to train on has only 59999")),
    ("style", {"style.n_judged": 100010},
     re.escape("`style.n_judged` is 100010, but the test set rendered as every class has only 100000")),
    ("style", {"train.train_subset": 60000},
     re.escape("`train.train_subset` is 60000, but the training split (after validation) has only 59800")),
], ids=["label-budget-above-a-class", "train-subset", "test-subset", "reconstructions", "interpolations",
        "unlabelled", "compress-test-subset", "lossy-test-subset", "anomaly-n-val", "anomaly-test-subset", "anomaly-n-fit",
        "judge-train-subset", "judge-val-size", "style-n-judged", "style-train-subset"])
def test_params_that_do_not_fit_the_data(refused, stage, changes, message):
    edit_params(changes)
    refused(stage, re.compile(r"params\.yaml: " + message))


def test_params_key_missing(refused):
    params = yaml.safe_load(Path("params.yaml").read_text())
    del params["train"]["epochs"]
    replace_file("params.yaml", yaml.safe_dump(params, sort_keys=False).encode())
    refused("evaluate", "params.yaml: `train.epochs` is missing")


@pytest.mark.parametrize("stage", ["check_params", "download", "train", "evaluate", "judge", "cluster", "generate",
                                   "style", "downstream", "compress", "corrupt", "anomaly", "explore"])
def test_every_stage_checks_params(refused, stage):
    edit_params({"latnet_dim": 32})
    refused(stage, "params.yaml: `latnet_dim` is not a known parameter; did you mean `latent_dim`?")


def test_params_file_missing(refused):
    Path("params.yaml").unlink()
    refused("evaluate", "params.yaml: `params.yaml` cannot be read (No such file or directory)")


def test_params_file_not_yaml(refused):
    replace_file("params.yaml", b"train: [unclosed\n")
    refused("evaluate", re.compile(r"params\.yaml: `params\.yaml` is not valid YAML \(.+\)"))


@pytest.mark.parametrize("stage", ["train", "evaluate", "judge", "cluster", "generate", "style", "downstream",
                                   "compress", "anomaly"])
def test_cuda_requested_without_gpu(refused, monkeypatch, stage):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    edit_params({"device": "cuda"})
    refused(stage, "params.yaml: `device` is cuda but no CUDA GPU is available; use auto or cpu")


# --- artifacts ------------------------------------------------------------------------------------

def tiny_state_dict(hidden: tuple[int, ...] = CONFIG.hidden) -> dict[str, torch.Tensor]:
    return VAE(dataclasses.replace(CONFIG, hidden=hidden)).state_dict()


def break_model(case: str) -> str | re.Pattern:
    """Put a bad file at models/vae.safetensors; return the message the stages must give."""
    model = Path(MODEL)
    if case == "missing":
        model.unlink()
        return f"{MODEL}: model file is missing; run `dvc repro train` first"
    if case == "truncated":
        replace_file(model, model.read_bytes()[:1000])
    elif case == "other-architecture":
        save_weights(model, tiny_state_dict(hidden=(16,)), CONFIG.to_dict())
        return re.compile(rf"{re.escape(MODEL)}: weights do not fit the model described in the file "
                          r"\(size mismatch for .+\)")
    elif case == "torch-save-pickle":
        torch.save({"state_dict": tiny_state_dict()}, unshared(model))
    elif case == "no-config":
        save_file(tiny_state_dict(), str(unshared(model)))
        return (f"{MODEL}: no vaepipe model config in its metadata (not written by the train stage); "
                "run `dvc repro train`")
    return UNREADABLE_MODEL


@pytest.mark.parametrize("stage", ["evaluate", "cluster", "generate", "downstream", "compress", "anomaly", "explore"])
@pytest.mark.parametrize("case", ["missing", "truncated", "other-architecture", "torch-save-pickle", "no-config"])
def test_bad_model_file(refused, stage, case):
    refused(stage, break_model(case))


class Exploit:
    """Unpickling this creates `path`: proof that the loader ran code from the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.mark.parametrize("stage, in_subprocess", [("evaluate", False), ("generate", False), ("downstream", False),
                                                  ("evaluate", True)],
                         ids=["evaluate", "generate", "downstream", "evaluate-subprocess"])
def test_malicious_pickle_is_never_run(work, refused, stage, in_subprocess):
    marker = work / "pwned"
    replace_file(MODEL, pickle.dumps(Exploit(marker)))
    refused(stage, UNREADABLE_MODEL, env={} if in_subprocess else None)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["missing", "truncated", "other-corruptions"])
def test_bad_corrupted_data(refused, case):
    path = Path("data/corrupted/test.safetensors")
    if case == "missing":
        path.unlink()
        message = re.compile(re.escape(f"{path}: cannot be read (") + r".+\); run `dvc repro corrupt`")
    elif case == "truncated":
        replace_file(path, path.read_bytes()[:500])
        message = re.compile(re.escape(f"{path}: cannot be read (") + r".+\); run `dvc repro corrupt`")
    else:
        save_file({"rotate": torch.zeros(3, 784, dtype=torch.uint8)}, str(unshared(path)))
        message = f"{path}: holds other corruptions than vaepipe.data.corruptions; run `dvc repro corrupt`"
    refused("anomaly", message)


@pytest.mark.parametrize("stage", ["generate", "downstream", "explore"])
@pytest.mark.parametrize("case", ["missing", "truncated", "no-metadata", "other-image-counts"])
def test_bad_clusters_file(refused, stage, case):
    path = Path("data/clusters.safetensors")
    if case == "missing":
        path.unlink()
        message = f"{path}: clusters file is missing; run `dvc repro cluster` first"
    elif case == "truncated":
        replace_file(path, path.read_bytes()[:200])
        message = re.compile(re.escape(f"{path}: not a readable vaepipe clusters file (") + r".+\)")
    elif case == "no-metadata":
        save_file({"train": torch.zeros(60000, dtype=torch.int64)}, str(unshared(path)))
        message = (f"{path}: no vaepipe clusters clustering in its metadata (not written by the cluster stage); "
                   "run `dvc repro cluster`")
    else:
        tensors = {"train": torch.zeros(600, dtype=torch.int64), "test": torch.zeros(100, dtype=torch.int64),
                   "test_map": torch.zeros(100, 2)}
        save_file(tensors, str(unshared(path)), metadata={"clustering": "{}"})
        message = f"{path}: does not cluster this dataset's training and test images; run `dvc repro cluster`"
    refused(stage, message)


@pytest.mark.parametrize("stage", ["generate", "style"])
@pytest.mark.parametrize("case", ["missing", "truncated", "no-metadata", "other-dataset", "a-vae"])
def test_bad_judge_file(refused, stage, case):
    path = Path("models/judge.safetensors")
    tensors, metadata = load_tensors(path)
    if case == "missing":
        path.unlink()
        message = f"{path}: judge file is missing; run `dvc repro judge` first"
    elif case == "truncated":
        replace_file(path, path.read_bytes()[:300])
        message = re.compile(re.escape(f"{path}: not a readable vaepipe judge file (") + r".+\)")
    elif case == "no-metadata":
        save_file(tensors, str(unshared(path)))
        message = f"{path}: no vaepipe judge config in its metadata (not written by the judge stage); run `dvc repro judge`"
    elif case == "other-dataset":
        save_file(tensors, str(unshared(path)), metadata={"config": '{"dataset": "fashion-mnist"}'})
        message = f"{path}: the judge was trained on fashion-mnist, not mnist; run `dvc repro judge`"
    else:
        save_file(tiny_state_dict(), str(unshared(path)), metadata=metadata)
        message = re.compile(re.escape(f"{path}: weights do not fit the judge (") + r".+\)")
    refused(stage, message)


def test_model_with_another_latent_dim(refused):
    other = dataclasses.replace(CONFIG, latent_dim=3)
    save_weights(MODEL, VAE(other).state_dict(), other.to_dict())
    refused("generate", f"{MODEL} has latent_dim 3 but params.yaml has 4; re-train it with `dvc repro train`")


# --- numerics -------------------------------------------------------------------------------------

def test_divergent_training_keeps_the_old_model(refused):
    edit_params({"train.lr": 1e12})
    refused("train", re.compile(r"training diverged: the loss became \S+ in epoch 1, step \d+ of 4; "
                                r"lower `train\.lr` \(now 1e\+12\)"))


@pytest.mark.parametrize("metrics, case", [(m, c) for m in ("evaluate", "style") for c in ("missing", "garbled")])
def test_explore_without_the_metrics_it_shows(refused, metrics, case):
    path = Path(f"metrics/{metrics}.json")
    if case == "missing":
        path.unlink()
        message = f"{path}: metrics file is missing; run `dvc repro {metrics}` first"
    else:
        replace_file(path, b'{"test_nll": ')
        message = re.compile(re.escape(f"{path}: no number under `") + r".+` \(JSONDecodeError: .+\); " +
                             re.escape(f"run `dvc repro {metrics}`"))
    refused("explore", message)


def test_explore_with_a_style_model_that_does_not_load(refused):
    replace_file("models/style.safetensors", b"not safetensors")
    refused("explore", re.compile(r"models/style\.safetensors: not a readable vaepipe model file \(.+\)"))


# --- environment: outputs that cannot be written --------------------------------------------------

@pytest.mark.parametrize("stage, blocked, message", [
    ("evaluate", "plots/evaluate",
     "cannot write plots/evaluate/reconstructions.png: plots/evaluate is not a directory"),
    ("downstream", "plots/downstream",
     "cannot write plots/downstream/confusion.csv: plots/downstream is not a directory"),
], ids=["evaluate", "downstream"])
def test_output_directory_is_a_file(refused, stage, blocked, message):
    # Root ignores permissions, but not a file standing where a directory must be. The stage's first
    # output (its metrics file) is written fine and must still not replace the old one.
    shutil.rmtree(blocked)
    Path(blocked).write_text("not a directory\n")
    refused(stage, message)


def test_output_file_is_a_directory(refused):
    Path("plots/generate/latent_map.png").unlink()
    Path("plots/generate/latent_map.png").mkdir()
    refused("generate", "cannot write plots/generate/latent_map.png: it is a directory")


def test_download_directory_is_a_file(refused, offline, mnist_mirror, monkeypatch):
    shutil.rmtree("data/raw")
    Path("data/raw").write_text("not a directory\n")
    monkeypatch.setenv(data.MIRROR_ENV, str(mnist_mirror))
    refused("download", "cannot write data/raw/train-images-idx3-ubyte: data/raw is not a directory")


def test_output_directory_read_only(refused):
    os.chmod("plots/evaluate", 0o555)
    # As a subprocess, which under root runs without root's permission override.
    refused("evaluate", "cannot write plots/evaluate/reconstructions.png: Permission denied", env={})

"""MNIST and Fashion-MNIST: download with checksum verification, and IDX loading.

Each file is fetched gzip-compressed from the first source that serves it intact; its
decompressed bytes must match the published md5 before it is written (atomically) as a
plain IDX file, read here (torchvision's reader is internal to it, and importing torchvision imports
TorchDynamo: over a second at the start of every stage and command).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from vaepipe.core.artifacts import write_bytes
from vaepipe.core.errors import DataError, ParamsError
from vaepipe.core.params import require_at_most
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE

MIRROR_ENV = "VAE_DATA_MIRROR"
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # IDX file name -> md5 of its decompressed bytes
    classes: tuple[str, ...]


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def sources(dataset: str, mirror: str | None = None) -> list[str]:
    """Where to look for `<file>.gz`, in order: the user's mirror (if any), then the official ones."""
    official = list(DATASETS[dataset].mirrors)
    if not mirror:
        return official
    if "://" not in mirror:  # a local directory laid out like ../shared/data
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return [mirror.rstrip("/") + f"/{dataset}/"] + official


def _fetch(url: str, timeout: float) -> bytes:
    if url.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if not path.parent.is_dir():
            raise DataError(f"mirror directory {path.parent} does not exist")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path.name} not found") from None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (ValueError, http.client.InvalidURL) as exc:  # e.g. a space or a broken IPv6 address in the URL
        raise DataError(f"malformed URL ({exc})") from None
    except http.client.IncompleteRead as exc:
        expected = f", {exc.expected} more expected" if exc.expected else ""
        raise DataError(f"connection cut after {len(exc.partial)} bytes{expected}") from None
    except http.client.HTTPException as exc:
        raise DataError(f"bad HTTP response ({type(exc).__name__}: {exc})") from None


def verified_idx_bytes(compressed: bytes, expected_md5: str) -> bytes:
    """Decompress a `.gz` download and check the md5 of the IDX bytes inside."""
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"not a complete gzip file ({exc})") from None
    actual = hashlib.md5(raw).hexdigest()
    if actual != expected_md5:
        raise DataError(f"md5 of decompressed bytes is {actual}, expected {expected_md5}")
    return raw


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, DataError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def download(dataset: str, out_dir: str | Path, mirror: str | None = None, timeout: float = 30.0) -> list[str]:
    """Put the four verified IDX files of `dataset` into `out_dir`; return the source of each file.

    A file already present with the right md5 is kept. On failure nothing partial is left behind
    and the error lists every source tried with its reason.
    """
    spec = DATASETS[dataset]
    out_dir = Path(out_dir)
    used = []
    for name, md5 in spec.md5.items():
        target = out_dir / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            used.append(str(target))
            continue
        failures = []
        for base in sources(dataset, mirror):
            url = f"{base}{name}.gz"
            try:
                write_bytes(target, verified_idx_bytes(_fetch(url, timeout), md5))
            except (OSError, DataError, urllib.error.URLError) as exc:
                failures.append(f"{url}: {_short_reason(exc)}")
                continue
            used.append(url)
            break
        else:
            raise DataError(
                f"could not get {dataset} file {name}: " + "; ".join(failures)
                + f". Set {MIRROR_ENV} to a directory or URL whose {dataset}/ folder holds the .gz files"
                " (e.g. export VAE_DATA_MIRROR=../shared/data)"
            )
    return used


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """An IDX file of unsigned bytes as a uint8 tensor: a big-endian magic number (its last byte the number of
    dimensions), a 4-byte big-endian size per dimension, then the bytes."""
    try:
        data = bytearray(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing; run `dvc repro download` first") from None
    if int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path}: wrong IDX magic number 0x{data[:4].hex()}, expected 0x{magic:08x}")
    header = 4 * (1 + magic % 256)
    if len(data) < header:
        raise DataError(f"{path}: malformed IDX file (its header is cut short at {len(data)} bytes)")
    shape = [int.from_bytes(data[at:at + 4], "big") for at in range(4, header, 4)]
    if len(data) - header != math.prod(shape):
        raise DataError(f"{path}: malformed IDX file ({len(data) - header} bytes of data for the shape {shape})")
    if len(data) == header:  # torch.frombuffer takes no empty buffer
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(data, dtype=torch.uint8, offset=header).view(shape)


def load_split(data_dir: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 [N, 784] in [0, 1] and labels as int64 [N]."""
    images_name, labels_name = SPLIT_FILES[split]
    images_path, labels_path = Path(data_dir) / images_name, Path(data_dir) / labels_name
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC).long()
    if tuple(images.shape[1:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{images_path}: images are {tuple(images.shape[1:])}, expected (28, 28)")
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    return images.reshape(len(images), IMAGE_PIXELS).float().div_(255), labels


def anomaly_test_images(data_dir: str | Path, test_subset: int) -> torch.Tensor:
    """The test images the anomaly stages score: the first `anomaly.test_subset`, or all if it is 0."""
    images, _ = load_split(data_dir, "test")
    require_at_most("anomaly.test_subset", test_subset, len(images), "the test set")
    return images[: test_subset or None]


def train_val_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation parts of the n training images: a seeded random hold-out of
    `val_size`. Training, model selection and the probes all use this one split."""
    if val_size >= n:
        raise ParamsError("train.val_size", f"is {val_size} but the training set has only {n} images")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def binarize(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """`dynamic`: each pixel ~ Bernoulli(grey level), freshly drawn every call; `none`: grey targets."""
    return torch.bernoulli(x, generator=gen) if mode == "dynamic" else x


# Whatever params say, so that numbers and codes compare across runs and experiments.
FIXED_BINARIZATION_SEED = 0

# Two fixed binarisations, both Bernoulli(grey level) draws, for two needs:
# - binarize_set: a data set (validation, test) as the likelihood scores it; the pixels are drawn in order from one
#   seeded stream, so the set's bits never change, but an image's bits depend on where it sits in the set;
# - binarize_each_image: single images, such as a user's; each is compared with the same field of uniforms, so an
#   image gets the same bits wherever it appears (what the anomaly detector's scores need).


def binarize_set(x: torch.Tensor, mode: str) -> torch.Tensor:
    """The images as the likelihood scores them (`train.binarize`), binarised once from a fixed seed: the
    validation curves, the test-set likelihood and the studies all score the same bits every time."""
    return binarize(x, mode, torch.Generator().manual_seed(FIXED_BINARIZATION_SEED))


def binarize_each_image(x: torch.Tensor) -> torch.Tensor:
    """Pixel i becomes 1 where u_i < its grey level, for one fixed field u of uniforms: each pixel is still a
    Bernoulli(grey) draw, and an image is binarised the same way wherever it appears."""
    field = torch.rand(IMAGE_PIXELS, generator=torch.Generator().manual_seed(FIXED_BINARIZATION_SEED))
    return (field.to(x.device) < x).to(x.dtype)


def mirror_from_env() -> str | None:
    return os.environ.get(MIRROR_ENV) or None

import gzip
import hashlib
import struct

import pytest
import torch

from vaepipe.core.errors import DataError
from vaepipe.data import datasets as data
from vaepipe.data.datasets import binarize, download, load_split, sources, verified_idx_bytes


def idx_images(n: int, side: int = 28, magic: int = 0x803) -> bytes:
    header = struct.pack(">IIII", magic, n, side, side)
    return header + bytes((i * 7) % 256 for i in range(n * side * side))


def idx_labels(n: int) -> bytes:
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def write_split(directory, images: bytes, labels: bytes, split="train"):
    images_name, labels_name = data.SPLIT_FILES[split]
    (directory / images_name).write_bytes(images)
    (directory / labels_name).write_bytes(labels)


def test_idx_round_trip(tmp_path):
    write_split(tmp_path, idx_images(3), idx_labels(3))
    images, labels = load_split(tmp_path, "train")
    assert images.shape == (3, 784) and images.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2]
    assert images[0, 1].item() == pytest.approx(7 / 255)
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_wrong_magic(tmp_path):
    write_split(tmp_path, idx_images(3, magic=0x801), idx_labels(3))
    with pytest.raises(DataError, match="wrong IDX magic number 0x00000801, expected 0x00000803"):
        load_split(tmp_path, "train")


def test_truncated_idx(tmp_path):
    write_split(tmp_path, idx_images(3)[:-100], idx_labels(3))
    with pytest.raises(DataError, match="malformed IDX file"):
        load_split(tmp_path, "train")


def test_header_cut_short(tmp_path):
    write_split(tmp_path, idx_images(3)[:10], idx_labels(3))
    with pytest.raises(DataError, match="malformed IDX file \\(its header is cut short at 10 bytes\\)"):
        load_split(tmp_path, "train")


def test_no_images(tmp_path):
    write_split(tmp_path, idx_images(0), idx_labels(0))
    images, labels = load_split(tmp_path, "train")
    assert images.shape == (0, 784) and labels.shape == (0,) and labels.dtype == torch.int64


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_idx_reader_reads_mnist_as_torchvision_does(mnist_raw, split):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    images_name, labels_name = data.SPLIT_FILES[split]
    images, labels = load_split(mnist_raw, split)
    assert torch.equal(images, read_image_file(str(mnist_raw / images_name)).reshape(len(images), 784).float() / 255)
    assert torch.equal(labels, read_label_file(str(mnist_raw / labels_name)))


def test_wrong_image_size(tmp_path):
    write_split(tmp_path, idx_images(3, side=32), idx_labels(3))
    with pytest.raises(DataError, match=r"images are \(32, 32\), expected \(28, 28\)"):
        load_split(tmp_path, "train")


def test_label_count_mismatch(tmp_path):
    write_split(tmp_path, idx_images(3), idx_labels(4))
    with pytest.raises(DataError, match="4 labels for 3 images"):
        load_split(tmp_path, "train")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file is missing; run `dvc repro download` first"):
        load_split(tmp_path, "test")


def test_verified_bytes_accept_good_and_reject_bad():
    raw = idx_labels(5)
    md5 = hashlib.md5(raw).hexdigest()
    assert verified_idx_bytes(gzip.compress(raw), md5) == raw
    with pytest.raises(DataError, match="md5 of decompressed bytes is"):
        verified_idx_bytes(gzip.compress(raw + b"\0"), md5)
    with pytest.raises(DataError, match="not a complete gzip file"):
        verified_idx_bytes(gzip.compress(raw)[:-6], md5)  # truncated
    with pytest.raises(DataError, match="not a complete gzip file"):
        verified_idx_bytes(b"\x1f\x8b" + b"garbage" * 10, md5)  # corrupt stream


def fake_dataset(monkeypatch, mirrors):
    """A one-file dataset named 'mnist', so download() can be exercised without the network."""
    raw = idx_labels(10)
    spec = data.DatasetSpec("mnist", tuple(mirrors), {"t10k-labels-idx1-ubyte": hashlib.md5(raw).hexdigest()},
                            classes=tuple("0123456789"))
    monkeypatch.setitem(data.DATASETS, "mnist", spec)
    return raw


def test_download_falls_back_past_bad_mirror(tmp_path, monkeypatch):
    good, bad = tmp_path / "good" / "mnist", tmp_path / "bad" / "mnist"
    raw = fake_dataset(monkeypatch, [good.as_uri() + "/"])
    good.mkdir(parents=True), bad.mkdir(parents=True)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw)[:-10])  # truncated on the user's mirror
    (good / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    out = tmp_path / "out"
    used = download("mnist", out, str(tmp_path / "bad"))
    assert used == [good.as_uri() + "/t10k-labels-idx1-ubyte.gz"]
    assert (out / "t10k-labels-idx1-ubyte").read_bytes() == raw
    assert [p.name for p in out.iterdir()] == ["t10k-labels-idx1-ubyte"]  # no temp files left


def test_download_failure_names_every_source_and_keeps_nothing(tmp_path, monkeypatch):
    # Port 9 on loopback refuses connections: an unreachable mirror without touching the internet.
    fake_dataset(monkeypatch, ["http://127.0.0.1:9/mnist/"])
    out = tmp_path / "out"
    with pytest.raises(DataError) as excinfo:
        download("mnist", out, str(tmp_path / "no-such-mirror"), timeout=5)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("could not get mnist file t10k-labels-idx1-ubyte: ")
    assert f"mirror directory {tmp_path / 'no-such-mirror' / 'mnist'} does not exist" in message
    assert "http://127.0.0.1:9/mnist/t10k-labels-idx1-ubyte.gz: unreachable" in message
    assert "Set VAE_DATA_MIRROR" in message
    assert not out.exists() or list(out.iterdir()) == []


def test_download_keeps_previous_good_file_when_mirror_is_corrupt(tmp_path, monkeypatch):
    raw = fake_dataset(monkeypatch, [])
    out = tmp_path / "out"
    out.mkdir()
    (out / "t10k-labels-idx1-ubyte").write_bytes(raw)
    # A good file already present is verified and kept; the mirror is not even read.
    assert download("mnist", out, str(tmp_path / "absent")) == [str(out / "t10k-labels-idx1-ubyte")]
    assert (out / "t10k-labels-idx1-ubyte").read_bytes() == raw


def test_sources_put_mirror_first(tmp_path):
    listed = sources("fashion-mnist", str(tmp_path))
    assert listed[0] == tmp_path.as_uri() + "/fashion-mnist/"
    assert listed[1:] == list(data.DATASETS["fashion-mnist"].mirrors)
    assert sources("mnist", "https://example.org/data/")[0] == "https://example.org/data/mnist/"


def test_real_mnist_from_mirror(mnist_raw):
    train_x, train_y = load_split(mnist_raw, "train")
    test_x, test_y = load_split(mnist_raw, "test")
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    assert train_y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    assert torch.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_binarize_modes():
    x = torch.full((1000, 784), 0.3)
    gen = torch.Generator().manual_seed(0)
    b = binarize(x, "dynamic", gen)
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert b.mean().item() == pytest.approx(0.3, abs=0.01)
    assert binarize(x, "none", gen) is x

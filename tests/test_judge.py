"""The judge classifier on real MNIST: it learns, it is deterministic, and its file round-trips."""

import dataclasses

import pytest
import torch

from vaepipe.core.errors import ArtifactError
from vaepipe.core.params import JudgeParams
from vaepipe.data.datasets import load_split
from vaepipe.classifiers.convnet import FEATURES
from vaepipe.generation.judge import accuracy, load_judge, save_judge, train_judge

PARAMS = JudgeParams(seed=0, epochs=2, batch_size=64, lr=0.002, val_size=100, train_subset=0, precision="fp32")


@pytest.fixture(scope="module")
def digits(mnist_raw):
    train_x, train_y = load_split(mnist_raw, "train")
    test_x, test_y = load_split(mnist_raw, "test")
    return train_x[:3000], train_y[:3000], test_x[:1000], test_y[:1000]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_judge_learns_digits_and_is_deterministic(digits, tmp_path, precision):
    """In both precisions; bf16 (autocast) keeps float32 weights, so the saved judge is the same kind of file."""
    train_x, train_y, test_x, test_y = digits
    params = dataclasses.replace(PARAMS, precision=precision)
    judge = train_judge(train_x, train_y, params, torch.device("cpu"))
    assert all(t.dtype in (torch.float32, torch.int64) for t in judge.state_dict().values())
    assert accuracy(judge, test_x, test_y) > 0.9  # 3,000 images, 2 epochs; chance is 0.1
    probs, features = judge.predict(test_x[:7])
    assert probs.shape == (7, 10) and features.shape == (7, FEATURES)
    torch.testing.assert_close(probs.sum(1), torch.ones(7))

    again = train_judge(train_x, train_y, params, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(judge.state_dict().values(), again.state_dict().values()))

    path = str(tmp_path / "judge.safetensors")
    save_judge(path, judge, "mnist")
    loaded = load_judge(path, "mnist", torch.device("cpu"))
    assert torch.equal(loaded.predict(test_x[:7])[1], features)
    with pytest.raises(ArtifactError, match="trained on mnist, not fashion-mnist"):
        load_judge(path, "fashion-mnist", torch.device("cpu"))

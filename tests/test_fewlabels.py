"""The few-label study's scripts on real MNIST digits, cut short, in a scratch tree: clusters that are the classes
with a tenth of them wrong, one dataset, one small budget."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO_ROOT, set_key
from vaepipe.core.artifacts import save_tensors
from vaepipe.core.errors import ParamsError
from vaepipe.core.params import parse_params
from vaepipe.data.datasets import SPLIT_FILES, load_split

STUDY = REPO_ROOT / "studies/fewlabels"
sys.path.insert(0, str(STUDY))
from fewlabels_params import FewLabelsParams  # noqa: E402

N_TRAIN, N_TEST = 1200, 300


def idx(images_or_labels: np.ndarray) -> bytes:
    magic = 0x800 + images_or_labels.ndim
    return b"".join(v.to_bytes(4, "big") for v in (magic, *images_or_labels.shape)) + images_or_labels.tobytes()


def run(script, *args):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=""))


@pytest.mark.slow
def test_the_student_learns_the_named_clusters_and_is_chosen_on_validation(mnist_raw, tmp_path):
    study = tmp_path / "studies/fewlabels"
    study.mkdir(parents=True)
    for name in ("student.py", "fewlabels_params.py", "summarize.py"):
        shutil.copy2(STUDY / name, study / name)
    (tmp_path / "src").symlink_to(REPO_ROOT / "src")
    pipeline = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_key(pipeline, "train.val_size", 300)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(pipeline))
    data = tmp_path / "studies/oneclass/data/mnist"
    data.mkdir(parents=True)
    labels = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        images, labels[split] = (t[:n].numpy() for t in load_split(mnist_raw, split))
        for name, array in zip(SPLIT_FILES[split], ((images * 255).round().astype(np.uint8).reshape(-1, 28, 28),
                                                     labels[split].astype(np.uint8))):
            (data / name).write_bytes(idx(array))
    rng = np.random.default_rng(0)
    clusters = {}
    for split, y in labels.items():  # the classes as clusters 9 - class, a tenth of them moved at random
        wrong = rng.random(len(y)) < 0.1
        clusters[split] = np.where(wrong, rng.integers(0, 10, len(y)), 9 - y)
    save_tensors(tmp_path / "clusters.safetensors", {"train": torch.as_tensor(clusters["train"]),
                                                     "test": torch.as_tensor(clusters["test"]),
                                                     "test_map": torch.zeros(N_TEST, 2)},
                 {"clustering": json.dumps({"method": "made up", "n_clusters": 10})})
    probes = {f"{p}_{s}accuracy_50_labels": 0.5 for p in ("logreg", "knn", "spread", "cluster") for s in ("", "val_")}
    (tmp_path / "downstream.json").write_text(json.dumps({**probes, "accuracy_50_labels": 0.5}))
    params = yaml.safe_load((STUDY / "params.yaml").read_text())
    params.update(datasets={"mnist": {"clusters": "../../clusters.safetensors", "downstream": "../../downstream.json"}},
                  budgets=[50], draws=1, epochs=3, repeats=2)
    (study / "params.yaml").write_text(yaml.safe_dump(params))

    result = run(study / "student.py", "mnist")
    assert result.returncode == 0, result.stderr
    results = json.loads((study / "results/mnist.json").read_text())["50_labels"]
    # 5 labels a class name the ten clusters right: the named clusters are as right as the clusters, about 0.9.
    assert results["cluster"]["test"] == pytest.approx(np.mean(clusters["test"] == 9 - labels["test"]))
    # Three short epochs on 1,200 digits: the student has learnt them, if not yet as well as the clusters hold them.
    assert results["student"]["val"] > 0.7 and results["student"]["test"] > 0.7

    assert run(study / "summarize.py").returncode == 0
    summary = json.loads((study / "metrics.json").read_text())["mnist"]
    assert summary["probe_50_labels"] == "student"
    assert summary["accuracy_50_labels"] == results["student"]["test"]

    bad = run(study / "student.py", "cifar")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: usage: student.py DATASET, one of mnist (got cifar)")
    params["budgets"] = [1000]
    (study / "params.yaml").write_text(yaml.safe_dump(params))
    bad = run(study / "student.py", "mnist")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: params.yaml: `budgets` has 1000: a balanced draw takes "
                                                       "100 labels of each class, and the training part of mnist has "
                                                       "only 77 images of one")
    bad = run(study / "summarize.py")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: ../../downstream.json: has no 1000-label results; "
                                                       "add 1000 to its run's downstream.label_budgets")


@pytest.mark.parametrize("key, value, bad_key, problem", [
    ("datasets", {"cifar": {"clusters": "c", "downstream": "d"}}, "datasets.cifar", "must be one of mnist, fashion-mnist"),
    ("budgets", [5], "budgets[0]", "must be >= 10, a label of each class"),
    ("budgets", [100, 100], "budgets", "must be a non-empty list of distinct label counts"),
    ("draws", 0, "draws", "must be > 0"),
    ("repeats", -1, "repeats", "must be >= 0"),
    ("epochs", 0, "epochs", "must be > 0"),
    ("precision", "fp16", "precision", "must be one of auto, fp32, bf16"),
])
def test_bad_study_params_name_the_key(key, value, bad_key, problem):
    raw = yaml.safe_load((STUDY / "params.yaml").read_text())
    raw[key] = value
    with pytest.raises(ParamsError) as error:
        parse_params(raw, FewLabelsParams)
    assert str(error.value) == f"params.yaml: `{bad_key}` {problem}"

"""The one-class study's script on real MNIST with tiny settings: one digit, every score, in a scratch tree."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT, set_key
from vaepipe.anomaly.detector import SCORES


@pytest.mark.slow
def test_one_digit_trains_and_scores_the_test_set(mnist_raw, tmp_path):
    study = tmp_path / "studies/oneclass"
    study.mkdir(parents=True)
    for name in ("one_class.py", "oneclass_params.py", "summarize.py"):  # get_data.py: the copy below stands for it
        shutil.copy2(REPO_ROOT / "studies/oneclass" / name, study / name)
    (tmp_path / "src").symlink_to(REPO_ROOT / "src")
    shutil.copytree(mnist_raw, study / "data/mnist")
    params = yaml.safe_load((REPO_ROOT / "studies/oneclass/params.yaml").read_text())
    for key, value in {"datasets": ["mnist"], "latent_dim": 4, "k": 2, "n_val_anomalies": 300, "train.hidden": [32],
                       "train.epochs": 2, "train.val_size": 100}.items():
        set_key(params, key, value)
    (study / "params.yaml").write_text(yaml.safe_dump(params))

    result = subprocess.run([sys.executable, str(study / "one_class.py"), "mnist", "1"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=""))
    assert result.returncode == 0, result.stderr
    results = json.loads((study / "results/mnist/1.json").read_text())
    assert results["dataset"] == "mnist" and results["digit"] == 1 and results["train_images"] == 6742 - 100
    assert set(results) == {"dataset", "digit", "train_images", *SCORES}
    # Ones against every other digit: even two epochs of a tiny model tell them apart.
    assert results["typicality"]["auroc"] > 0.8 and results["nll"]["auroc"] > 0.8
    # The validation AUROC (held-out ones against other digits' training images) tracks the test AUROC.
    assert all(abs(results[s]["val_auroc"] - results[s]["auroc"]) < 0.1 for s in SCORES)

    for digit in range(10):  # the summary reads every digit: the others copied from digit 1's file
        (study / f"results/mnist/{digit}.json").write_text((study / "results/mnist/1.json").read_text())
    subprocess.run([sys.executable, str(study / "summarize.py")], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=""))
    summary = json.loads((study / "metrics.json").read_text())["mnist"]
    chosen = max(SCORES, key=lambda s: results[s]["val_auroc"])
    assert summary["chosen"] == {"score": chosen, "auroc": pytest.approx(results[chosen]["auroc"]),
                                 "val_auroc": pytest.approx(results[chosen]["val_auroc"])}

    bad = subprocess.run([sys.executable, str(study / "one_class.py"), "mnist", "12"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: usage: one_class.py DATASET CLASS, a dataset of mnist, fashion-mnist and a "
                                  "class from 0 to 9 (got mnist 12)")

"""End to end: the real DVC pipeline on real MNIST, in a fresh git repository, with tiny params."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from conftest import chromium, run_ok
from vaepipe.anomaly.detector import SCORES
from vaepipe.data.corruptions import CORRUPTIONS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tiny_project):
    return tiny_project


def test_metrics_are_complete_and_sane(repo):
    root, _ = repo
    evaluate = json.loads((root / "metrics/evaluate.json").read_text())
    assert {"test_neg_elbo", "test_recon", "test_kl", "test_nll", "test_bpd", "active_units", "k",
            "n_test"} <= set(evaluate)
    assert evaluate["k"] == 50 and evaluate["n_test"] == 1000
    assert 60 < evaluate["test_nll"] <= evaluate["test_neg_elbo"] < 300
    assert 0 < evaluate["test_bpd"] < 1 and 1 <= evaluate["active_units"] <= 2

    downstream = json.loads((root / "metrics/downstream.json").read_text())
    for key in ("accuracy", "logreg_accuracy", "knn_accuracy", "accuracy_100_labels", "accuracy_1000_labels",
                "logreg_val_accuracy", "knn_val_accuracy"):
        assert 0.2 < downstream[key] <= 1.0, key  # chance is 0.1
    few_label_probes = ("logreg", "knn", "spread", "cluster")
    for suffix, probes in (("", ("logreg", "knn")), ("_100_labels", few_label_probes),
                           ("_1000_labels", few_label_probes)):  # the best on validation
        chosen = max(probes, key=lambda probe: downstream[f"{probe}_val_accuracy{suffix}"])
        assert downstream[f"probe{suffix}"] == chosen
        assert downstream[f"accuracy{suffix}"] == downstream[f"{chosen}_accuracy{suffix}"], suffix

    cluster = json.loads((root / "metrics/cluster.json").read_text())
    assert cluster["method"] == "self_labelled" and cluster["n_clusters"] == 10
    for part in ("test", "all"):
        assert set(cluster[part]) == {"kmeans_codes", "gmm_codes", "kmeans_umap", "gmm_umap", "self_labelled"}
        for scores in cluster[part].values():
            assert 0.1 <= scores["accuracy"] <= 1 and 0 <= scores["nmi"] <= 1 and -0.5 <= scores["ari"] <= 1
    assert {k: cluster[k] for k in ("accuracy", "nmi", "ari")} == cluster["test"]["self_labelled"]
    # The 2-epoch model with a 2-D latent space clusters poorly (0.25 here), but well above chance: about
    # 0.12 accuracy and 0 NMI for clusters that ignore the digits.
    assert cluster["accuracy"] > 0.2 and cluster["nmi"] > 0.1

    compress = json.loads((root / "metrics/compress.json").read_text())
    assert compress["n_images"] == 1000 and compress["file_bytes"] == (root / "data/compressed/test.vbb").stat().st_size
    # Bits-back coding costs the model's -ELBO (the stage has checked the round trip bit for bit) ...
    assert abs(compress["net_gap_percent"]) < 3 and compress["total_bpp"] > compress["net_bpp"]
    baselines = compress["baselines_bpp"]
    assert set(baselines) == {"gzip", "bz2", "lzma", "png_file", "png_image_data", "png_per_image_files", "webp_file"}
    assert all(0 < rate < 2 for rate in baselines.values()) and baselines["png_image_data"] < baselines["png_file"]
    # ... which, even for a 2-epoch model, beats PNG files of the images one by one.
    assert compress["total_bpp"] < baselines["png_per_image_files"]

    lossy = json.loads((root / "metrics/lossy.json").read_text())
    assert lossy["n_images"] == 1000 and [point["setting"] for point in lossy["steps"]] == [0.75, 1.0]
    for point, step in zip(lossy["steps"], (0.75, 1.0)):
        file_bytes = (root / f"data/compressed/lossy/test-step{step:g}.vlc").stat().st_size
        assert point["bytes_per_image"] == file_bytes / 1000 > point["payload_bytes_per_image"] > 0
        # A 2-D latent code of the 2-epoch model in a byte or two: read as the right digit well above chance (0.1;
        # 0.22 at step 0.75 here), well below the originals.
        assert 0.13 < point["accuracy"] < lossy["judge_accuracy_on_originals"] and 10 < point["psnr_db"] < 30
    assert lossy["steps"][0]["bytes_per_image"] > lossy["steps"][1]["bytes_per_image"]

    anomaly = json.loads((root / "metrics/anomaly.json").read_text())
    assert anomaly["ood_dataset"] == "fashion-mnist"
    for task in [anomaly["ood"], *(anomaly["corruption"][name] for name in CORRUPTIONS), anomaly["corruption"]["mean"]]:
        for score in SCORES:
            assert set(task[score]) == {"auroc", "auprc", "fpr_at_95_tpr", "val_auroc"}
            assert all(0 <= value <= 1 for value in task[score].values())
        assert task is anomaly["ood"] or task["typicality"]["auroc"] > 0.5
    # Even a 2-epoch model with a 2-D latent space tells Fashion-MNIST from digits.
    assert anomaly["ood"]["best"]["auroc"] > 0.95
    assert anomaly["detector"]["score"] in SCORES and 0 < anomaly["detector"]["test_flagged_normal"] < 0.15

    judge = json.loads((root / "metrics/judge.json").read_text())
    assert judge["train_images"] == 5000 and 0.9 < judge["test_accuracy"] <= 1 and 0.9 < judge["val_accuracy"] <= 1
    generate = json.loads((root / "metrics/generate.json").read_text())
    assert generate["n_judged"] == 1000
    real = generate["test_set"]
    # The test set is balanced, and a 1-epoch judge (0.92 accurate) sees all ten classes in it.
    assert 0 < real["frechet_between_halves"] and 0.3 < real["confident"] <= 1 and real["class_entropy_bits"] > 3.3
    for sampler in ("prior", "gmm", "learned"):
        scores = generate[sampler]
        # A 2-epoch model with a 2-D latent space draws blurry digits (CI measured Fréchet distances above 500
        # and no confident sample): much further from the test set than its halves are from each other.
        assert scores["frechet"] > 10 * real["frechet_between_halves"], sampler
        assert 0 <= scores["confident"] <= real["confident"], sampler
        assert 0 <= scores["class_entropy_bits"] <= math.log2(10) + 1e-9, sampler
    # The ceiling, scored like the samplers. No order between them here: this model's reconstructions are as blurry
    # as its samples (CI measured 572 against the best sampler's 511).
    ceiling = generate["reconstructions"]
    assert set(ceiling) == set(generate["prior"]) and ceiling["frechet"] > 10 * real["frechet_between_halves"]
    assert 0 <= ceiling["confident"] <= 1 and 0 <= ceiling["class_entropy_bits"] <= math.log2(10) + 1e-9

    style = json.loads((root / "metrics/style.json").read_text())
    assert style["latent_dim"] == 4 and style["kept_epoch"] in (1, 2)
    assert style["class_conditional"]["n"] == style["style_transfer"]["n"] == 1000
    for use in ("class_conditional", "style_transfer"):
        # Chance is 0.1 (sd 0.01 over 1,000 images); this 2-epoch model is read as intended 0.165 and 0.171 of
        # the time. A model that ignores its label falls to chance.
        assert 0.13 < style[use]["read_as_intended"] <= 1, use
    assert style["class_conditional"]["frechet"] > 10 * real["frechet_between_halves"]
    given = style["test_given_label"]
    assert 0 < given["kl"] < given["neg_elbo"] < 600 and given["neg_elbo"] == pytest.approx(given["recon"] + given["kl"])

    train = json.loads((root / "metrics/train/metrics.json").read_text())
    assert train["step"] == 2
    # Two independent computations of the same quantity on two samples of MNIST digits: the train stage's
    # validation -ELBO (one z sample) and the evaluate stage's test -ELBO (16 draws of q) agree within a few nats
    # (5.0 apart for this 2-epoch model: its 1,000 validation and 1,000 test digits differ that much).
    assert abs(train["val"]["neg_elbo"] - evaluate["test_neg_elbo"]) < 8
    curve = (root / "metrics/train/plots/metrics/val/neg_elbo.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in curve] == ["step", "1", "2"]  # one row per epoch


def test_figures_exist(repo):
    root, _ = repo
    for name in ("plots/evaluate/reconstructions.png", "plots/generate/samples.png",
                 "plots/generate/interpolations.png", "plots/generate/latent_map.png",
                 "plots/generate/manifold.png", "plots/style/transfer.png", "plots/style/class_samples.png"):
        assert (root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name in ("plots/anomaly/histograms.png", "plots/anomaly/extremes.png", "plots/anomaly/corruptions.png",
                 "plots/cluster/central.png", "plots/cluster/centres.png", "plots/lossy/rates.png"):
        assert (root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    explorer = sorted(p.name for p in (root / "plots/explorer").iterdir())  # tests/test_explorer.py opens it
    assert explorer == ["explorer.css", "explorer.js", "index.html", "index.js", "style.html", "style.js",
                        "test_images.js"]
    roc_files = sorted(p.relative_to(root / "plots/anomaly/roc").as_posix()
                       for p in (root / "plots/anomaly/roc").rglob("*.csv"))
    assert roc_files == sorted([f"ood/{s}.csv" for s in SCORES] + [f"corruption/{c}.csv" for c in CORRUPTIONS])
    roc = (root / "plots/anomaly/roc/ood/typicality.csv").read_text().splitlines()
    assert roc[0] == "fpr,tpr" and len(roc) == 102 and roc[-1] == "1,1"
    confusion = (root / "plots/downstream/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 10001  # the whole test set
    clusters = (root / "plots/cluster/confusion.csv").read_text().splitlines()
    assert clusters[0] == "actual,cluster" and len(clusters) == 10001


def test_second_repro_is_up_to_date(repo):
    root, env = repo
    # The default pipeline only: the studies' stages (studies/*/dvc.yaml) were not run here, and
    # studies/best depends on params.yaml, which the tiny experiment changed.
    assert "up to date" in run_ok(["dvc", "status", "dvc.yaml"], root, env)
    assert "Data and pipelines are up to date" in run_ok(["dvc", "repro"], root, env)


def test_metrics_diff_and_exp_show(repo):
    root, env = repo
    diff = run_ok(["dvc", "metrics", "diff", "--json"], root, env)
    changed = json.loads(diff)
    assert changed["metrics/evaluate.json"]["k"]["new"] == 50
    # The sample metrics compare between experiments too: the default run's (committed) against the tiny one's.
    assert changed["metrics/generate.json"]["n_judged"] == {"old": 10000, "new": 1000, "diff": -9000}
    assert {"prior.frechet", "gmm.frechet", "prior.confident"} <= set(changed["metrics/generate.json"])
    assert changed["metrics/style.json"]["class_conditional.n"] == {"old": 10000, "new": 1000, "diff": -9000}
    assert "class_conditional.read_as_intended" in changed["metrics/style.json"]
    assert "tiny" in run_ok(["dvc", "exp", "show", "--no-pager", "--csv"], root, env)


@pytest.mark.parametrize("typo, line_after", [("latnet_dim: 16", "latent_dim:"), ("  epoch: 5", "  epochs:")])
def test_params_typo_fails_an_up_to_date_repro(repo, typo, line_after):
    root, env = repo
    params = root / "params.yaml"
    valid = params.read_text()
    assert "Data and pipelines are up to date" in run_ok(["dvc", "repro"], root, env)
    lines = valid.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(line_after)) + 1
    params.write_text("".join(lines[:at] + [typo + "\n"] + lines[at:]))
    try:
        result = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    finally:
        params.write_text(valid)
    key = "latnet_dim" if "latnet" in typo else "train.epoch"
    assert result.returncode != 0
    assert f"error: params.yaml: `{key}` is not a known parameter; did you mean" in result.stderr
    assert "Data and pipelines are up to date" in run_ok(["dvc", "repro"], root, env)


def plots_page(root: Path, env: dict) -> str:
    result = subprocess.run(["dvc", "plots", "show", "--out", "plots_html"], cwd=root, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    # Every plot a dvc.yaml declares loads, the studies' figures included (committed, as a fresh clone has them).
    assert "failed to load" not in result.stdout + result.stderr, result.stdout + result.stderr
    return (root / "plots_html/index.html").read_text()


def test_plots_show_writes_html_that_loads_no_remote_script(repo):
    root, env = repo
    html = plots_page(root, env)
    for fragment in ("Negative ELBO per image", "Confusion matrix", "reconstructions.png", "samples.png",
                     "interpolations.png", "latent_map.png", "manifold.png", "transfer.png", "class_samples.png",
                     "ROC: normal test images vs the",
                     "AUROC per MNIST-C corruption", "histograms.png", "extremes.png", "corruptions.png",
                     "Clusters found without labels", "central.png", "centres.png",
                     "rate_distortion.png", "grid.png"):
        assert fragment in html, fragment
    assert list(Path(root / "plots_html").rglob("*.png"))
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and not [tag for tag in scripts if "src=" in tag]
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "vegaEmbed(" in html and 'data-package="vega@' in html


@pytest.mark.browser
def test_plots_page_renders_every_chart_without_network(repo, tmp_path):
    root, env = repo
    html = plots_page(root, env)
    charts = html.count("vegaEmbed('#")
    # three training curves, two confusion matrices (probe, clusters), two ROC charts, the AUROC bars; and the
    # rate-distortion study's two curves (studies/ratedistortion/dvc.yaml, from its committed CSVs)
    assert charts == 10
    # Every host name fails to resolve: the browser is as offline as a machine without network.
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                          "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", "--dump-dom",
                          (root / "plots_html/index.html").as_uri()],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    # vega-embed draws each chart into a <canvas class="marks">; a chart whose libraries did not load has none.
    assert dom.count('class="marks"') == charts

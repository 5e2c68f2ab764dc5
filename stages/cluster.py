"""Stage `cluster`: clusters of the posterior means mu(x) of all 70,000 images (training and test), found
without labels by every method of vaepipe.clustering and scored against the classes on the test set and on
all images. Writes the headline clustering's assignments (the downstream stage names its clusters with few
labels; generate colours its latent map by them) with a 2-D UMAP map of the test codes (generate's default
map), the metrics, the most central test images per cluster, and the decoded mean code of every method's
clusters.
"""

import json

import numpy as np
import pandas as pd
import torch

from vaepipe.artifacts import all_or_nothing, atomic_path, save_tensors, write_json
from vaepipe.cli import run_stage
from vaepipe.clustering import (CLUSTER_MIN_DIST, HEADLINE, cluster_means, cluster_to_class, clustering_scores,
                                fit_clusterings, in_class_order, most_central)
from vaepipe.data import DATASETS, load_split
from vaepipe.latent import decode_probs, embed_2d, encode_means, umap_embedding
from vaepipe.model import load_model
from vaepipe.params import load_params
from vaepipe.plots import labelled_rows
from vaepipe.runtime import make_deterministic, select_device

MODEL_PATH = "models/vae.safetensors"
CLUSTERS_PATH = "data/clusters.safetensors"
METRICS_PATH = "metrics/cluster.json"
PLOTS_DIR = "plots/cluster"
N_CENTRAL = 12  # images per cluster in the figure


def main() -> None:
    params = load_params()
    cp = params.cluster
    make_deterministic(params.seed)
    model = load_model(MODEL_PATH, select_device(params.device))
    device = next(model.parameters()).device
    (train_x, train_y), (test_x, test_y) = (load_split("data/raw", split) for split in ("train", "test"))
    codes = np.concatenate([encode_means(model, x.to(device)).numpy() for x in (train_x, test_x)])
    labels = np.concatenate([train_y.numpy(), test_y.numpy()])
    test = slice(len(train_y), None)
    classes = DATASETS[params.dataset].classes

    embedding = umap_embedding(codes, cp.umap_components, cp.umap_neighbors, params.seed,
                               min_dist=CLUSTER_MIN_DIST, n_epochs=cp.umap_epochs)
    fitted = fit_clusterings(codes, embedding, cp.n_clusters, cp.gmm_inits, params.seed)
    scores = {part: {method: clustering_scores(labels[rows], clusters[rows])
                     for method, (clusters, _) in fitted.items()}
              for part, rows in (("test", test), ("all", slice(None)))}
    metrics = {**scores["test"][HEADLINE], "method": HEADLINE, "n_clusters": cp.n_clusters, **scores}

    clusters, gmm = fitted[HEADLINE]
    matching = cluster_to_class(labels[test], clusters[test])  # cluster id -> class index
    cluster_names = [classes[matching[k]] if k in matching else f"unmatched #{k}" for k in range(cp.n_clusters)]
    central = most_central(embedding[test], clusters[test], gmm, N_CENTRAL)
    # Each method's clusters decoded from their mean code, in the order of the classes they are matched to.
    decoded_means = {method: decode_probs(model, torch.as_tensor(
        cluster_means(codes, c, cp.n_clusters)[in_class_order(labels[test], c[test], cp.n_clusters)],
        dtype=torch.float32, device=device)) for method, (c, _) in fitted.items()}
    # The generate stage's default latent map, computed here where UMAP is already imported and compiled.
    test_map = torch.as_tensor(embed_2d(codes[test], "umap", params.seed))

    with all_or_nothing():
        save_tensors(CLUSTERS_PATH, {"train": torch.as_tensor(clusters[:len(train_y)]),
                                     "test": torch.as_tensor(clusters[test]), "test_map": test_map},
                     {"clustering": json.dumps({"method": HEADLINE, "n_clusters": cp.n_clusters})})
        write_json(METRICS_PATH, metrics)
        with atomic_path(f"{PLOTS_DIR}/confusion.csv") as tmp:
            pd.DataFrame({"actual": [classes[y] for y in labels[test]],
                          "cluster": [cluster_names[k] for k in clusters[test]]}).to_csv(tmp, index=False)
        labelled_rows({f"cluster → {cluster_names[k]}": test_x[central[k]]
                       for k in in_class_order(labels[test], clusters[test], cp.n_clusters) if k in central},
                      f"Most central test images of each cluster ({HEADLINE})", f"{PLOTS_DIR}/central.png")
        labelled_rows(decoded_means, "Decoded mean code of each cluster, in the order of the matched classes",
                      f"{PLOTS_DIR}/centres.png")
    print(f"{HEADLINE} on the test set: accuracy {metrics['accuracy']:.4f}, NMI {metrics['nmi']:.4f}, "
          f"ARI {metrics['ari']:.4f}")


if __name__ == "__main__":
    run_stage(main)

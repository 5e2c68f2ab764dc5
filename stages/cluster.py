"""Stage `cluster`: clusters of the posterior means mu(x) of all 70,000 images (training and test), found
without labels by every method of vaepipe.latent.clustering, and by self-labelling a finer mixture on the same
embedding (the headline; `cluster.self_label_epochs: 0` skips it, and the mixture's are the headline), scored
against the classes on the test set and on all images. Writes the headline clustering's assignments (the downstream
stage names its clusters with few labels; generate colours its latent map by them) with a 2-D UMAP map of the test
codes (generate's default map), the metrics, the most central test images per cluster, and the decoded mean code of
every method's clusters.


    dvc repro cluster
    dvc exp run -S cluster.umap_neighbors=30 -S cluster.gmm_inits=8
    dvc exp run -S cluster.self_label_epochs=0
    dvc exp run -S cluster.overclusters=10     # self-label the mixture's own 10 clusters, no merging
"""

import json

import numpy as np
import pandas as pd
import torch

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, atomic_path, save_tensors, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params
from vaepipe.core.runtime import make_deterministic, provenance, resolved_precision, select_device
from vaepipe.data.datasets import DATASETS, load_split
from vaepipe.figures.plots import labelled_rows
from vaepipe.latent.clustering import (CLUSTER_MIN_DIST, REFINED, SELF_LABELLED, cluster_means, cluster_to_class,
                                       clustering_scores, fit_clusterings, fit_mixture, in_class_order, most_central,
                                       most_confident)
from vaepipe.latent.embedding import embed_2d, umap_embedding
from vaepipe.latent.self_labelling import merge_confused, self_label
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import load_model

N_CENTRAL = 12  # images per cluster in the figure


def main() -> None:
    params = load_params()
    cp = params.cluster
    make_deterministic(params.seed)
    model = load_model(paths.VAE, select_device(params.device))
    device = next(model.parameters()).device
    (train_x, train_y), (test_x, test_y) = (load_split(paths.RAW, split) for split in ("train", "test"))
    codes = np.concatenate([posterior_means(model, x.to(device)).numpy() for x in (train_x, test_x)])
    labels = np.concatenate([train_y.numpy(), test_y.numpy()])
    test = slice(len(train_y), None)
    classes = DATASETS[params.dataset].classes

    embedding = umap_embedding(codes, cp.umap_components, cp.umap_neighbors, params.seed,
                               min_dist=CLUSTER_MIN_DIST, n_epochs=cp.umap_epochs)
    fitted = fit_clusterings(codes, embedding, cp.n_clusters, cp.gmm_inits, params.seed)
    assignments = {method: clusters for method, (clusters, _) in fitted.items()}
    headline = REFINED
    if cp.self_label_epochs:
        headline = SELF_LABELLED
        images = torch.cat([train_x, test_x])
        settings = (cp.self_label_epochs, params.seed, resolved_precision(cp.precision, device), device,
                    cp.self_label_subset)
        start = assignments[REFINED]
        if cp.overclusters > cp.n_clusters:  # more clusters than classes, merged by the CNN that learns them
            overclusters, _ = fit_mixture(embedding, cp.overclusters, cp.gmm_inits, params.seed)
            start = merge_confused(self_label(images, overclusters, cp.overclusters, *settings), cp.n_clusters,
                                   cp.merge_cap)
        probs = self_label(images, start, cp.n_clusters, *settings)
        assignments[headline] = probs.argmax(1)
    scores = {part: {method: clustering_scores(labels[rows], c[rows]) for method, c in assignments.items()}
              for part, rows in (("test", test), ("all", slice(None)))}
    metrics = {**scores["test"][headline], "method": headline, "n_clusters": cp.n_clusters, **scores,
               "run": provenance(device, cp.precision)}

    clusters = assignments[headline]
    matching = cluster_to_class(labels[test], clusters[test])  # cluster id -> class index
    cluster_names = [classes[matching[k]] if k in matching else f"unmatched #{k}" for k in range(cp.n_clusters)]
    central = (most_confident(probs[test], clusters[test], N_CENTRAL) if headline == SELF_LABELLED else
               most_central(embedding[test], clusters[test], fitted[REFINED][1], N_CENTRAL))
    # Each method's clusters decoded from their mean code, in the order of the classes they are matched to.
    decoded_means = {method: decode_probs(model, torch.as_tensor(
        cluster_means(codes, c, cp.n_clusters)[in_class_order(labels[test], c[test], cp.n_clusters)],
        dtype=torch.float32, device=device)) for method, c in assignments.items()}
    # The generate stage's default latent map, computed here where UMAP is already imported and compiled.
    test_map = torch.as_tensor(embed_2d(codes[test], "umap", params.seed))

    with all_or_nothing():
        save_tensors(paths.CLUSTERS, {"train": torch.as_tensor(clusters[:len(train_y)]),
                                     "test": torch.as_tensor(clusters[test]), "test_map": test_map},
                     {"clustering": json.dumps({"method": headline, "n_clusters": cp.n_clusters})})
        write_json(paths.metrics("cluster"), metrics)
        with atomic_path(f"{paths.plots('cluster')}/confusion.csv") as tmp:
            pd.DataFrame({"actual": [classes[y] for y in labels[test]],
                          "cluster": [cluster_names[k] for k in clusters[test]]}).to_csv(tmp, index=False)
        labelled_rows({f"cluster → {cluster_names[k]}": test_x[central[k]]
                       for k in in_class_order(labels[test], clusters[test], cp.n_clusters) if k in central},
                      f"Most central test images of each cluster ({headline})", f"{paths.plots('cluster')}/central.png")
        labelled_rows(decoded_means, "Decoded mean code of each cluster, in the order of the matched classes",
                      f"{paths.plots('cluster')}/centres.png")
    print(f"{headline} on the test set: accuracy {metrics['accuracy']:.4f}, NMI {metrics['nmi']:.4f}, "
          f"ARI {metrics['ari']:.4f}")


if __name__ == "__main__":
    run_stage(main)

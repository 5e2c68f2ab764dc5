"""Stage `explore`: the latent-space explorer, plots/explorer/ — a folder that opens from disk with no server and
no network, the decoders running in the page (vaepipe.explorer.build). index.html explores the VAE, its test codes on
the cluster stage's UMAP map; style.html the style stage's conditional VAE, where the label can change under a
fixed z, its codes on their first two principal components.

    dvc repro explore                          # then open plots/explorer/index.html
    dvc exp run -S explore.directions=4 -S explore.frames=16
"""

import torch

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, file_sha256, read_metric, write_bytes
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params
from vaepipe.core.runtime import make_deterministic
from vaepipe.data.datasets import DATASETS, load_split
from vaepipe.explorer.build import ExplorerPage, explorer_files
from vaepipe.latent.clustering import load_clusters
from vaepipe.vae.codes import posterior_means
from vaepipe.vae.model import load_model



def main() -> None:
    params = load_params()
    make_deterministic(params.seed)
    cpu = torch.device("cpu")  # the page decodes on a CPU too
    vae, style = load_model(paths.VAE, cpu), load_model(paths.STYLE, cpu)
    test_nll = read_metric(paths.metrics("evaluate"), "test_nll", "evaluate")
    style_neg_elbo = read_metric(paths.metrics("style"), "test_given_label.neg_elbo", "style")
    images, labels = load_split(paths.RAW, "test")
    dataset = DATASETS[params.dataset]
    pages = [
        ExplorerPage("index.html", f"VAE on {dataset.name}", vae, file_sha256(paths.VAE), posterior_means(vae, images),
                     (("test NLL", f"{test_nll:.2f} nats"),),
                     load_clusters(paths.CLUSTERS, None, len(images))["test_map"], "UMAP of the codes"),
        ExplorerPage("style.html", f"Conditional VAE (style stage) on {dataset.name}", style, file_sha256(paths.STYLE),
                     posterior_means(style, images, labels), (("test −ELBO given the label", f"{style_neg_elbo:.2f} nats"),)),
    ]
    files = explorer_files(pages, images, labels, dataset.classes, params.explore.directions, params.explore.frames)
    with all_or_nothing():
        for name, data in files.items():
            write_bytes(f"{paths.EXPLORER}/{name}", data)
    print(f"{paths.EXPLORER}: {len(files)} files, {sum(map(len, files.values())):,} bytes; open {paths.EXPLORER}/index.html")


if __name__ == "__main__":
    run_stage(main)

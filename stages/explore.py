"""Stage `explore`: the latent-space explorer, plots/explorer/ — a folder that opens from disk with no server and
no network, the decoders running in the page (vaepipe.explorer). index.html explores the VAE, its test codes on
the cluster stage's UMAP map; style.html the style stage's conditional VAE, where the label can change under a
fixed z, its codes on their first two principal components."""

import torch

from vaepipe.artifacts import all_or_nothing, file_sha256, read_metric, write_bytes
from vaepipe.cli import run_stage
from vaepipe.clustering import load_clusters
from vaepipe.data import DATASETS, load_split
from vaepipe.explorer import ExplorerPage, explorer_files
from vaepipe.latent import encode_means
from vaepipe.model import load_model
from vaepipe.params import load_params
from vaepipe.runtime import make_deterministic

VAE_PATH = "models/vae.safetensors"
STYLE_PATH = "models/style.safetensors"
CLUSTERS_PATH = "data/clusters.safetensors"
OUT_DIR = "plots/explorer"


def main() -> None:
    params = load_params()
    make_deterministic(params.seed)
    cpu = torch.device("cpu")  # the page decodes on a CPU too
    vae, style = load_model(VAE_PATH, cpu), load_model(STYLE_PATH, cpu)
    test_nll = read_metric("metrics/evaluate.json", "test_nll", "evaluate")
    style_neg_elbo = read_metric("metrics/style.json", "test_given_label.neg_elbo", "style")
    images, labels = load_split("data/raw", "test")
    dataset = DATASETS[params.dataset]
    pages = [
        ExplorerPage("index.html", f"VAE on {dataset.name}", vae, file_sha256(VAE_PATH), encode_means(vae, images),
                     (("test NLL", f"{test_nll:.2f} nats"),),
                     load_clusters(CLUSTERS_PATH, None, len(images))["test_map"], "UMAP of the codes"),
        ExplorerPage("style.html", f"Conditional VAE (style stage) on {dataset.name}", style, file_sha256(STYLE_PATH),
                     encode_means(style, images, labels), (("test −ELBO given the label", f"{style_neg_elbo:.2f} nats"),)),
    ]
    files = explorer_files(pages, images, labels, dataset.classes, params.explore.directions, params.explore.frames)
    with all_or_nothing():
        for name, data in files.items():
            write_bytes(f"{OUT_DIR}/{name}", data)
    print(f"{OUT_DIR}: {len(files)} files, {sum(map(len, files.values())):,} bytes; open {OUT_DIR}/index.html")


if __name__ == "__main__":
    run_stage(main)

"""Stage `generate`: samples from each sampler, scored by the judge (metrics/generate.json), interpolations
between test digits, a 2-D latent map coloured by class and by the cluster stage's clusters, and (when
latent_dim == 2) the decoded manifold."""

import torch

from vaepipe.artifacts import all_or_nothing, write_json
from vaepipe.cli import run_stage
from vaepipe.clustering import HEADLINE, load_clusters, matched_class_groups
from vaepipe.data import DATASETS, load_split
from vaepipe.errors import ArtifactError
from vaepipe.judge import load_judge
from vaepipe.latent import decode_probs, embed_2d, encode_means, interpolate, manifold_grid
from vaepipe.model import load_model
from vaepipe.params import load_params, require_at_most
from vaepipe.runtime import generator, make_deterministic, select_device
from vaepipe.plots import image_grids, latent_map
from vaepipe.sample_quality import class_scores, frechet_distance, judged
from vaepipe.samplers import CodeMixture, draw_codes, sampler_title

DATA_DIR = "data/raw"
MODEL_PATH = "models/vae.safetensors"
JUDGE_PATH = "models/judge.safetensors"
CLUSTERS_PATH = "data/clusters.safetensors"
METRICS_PATH = "metrics/generate.json"
OUT_DIR = "plots/generate"
AXIS_NAMES = {"identity": "z", "umap": "UMAP dimension", "pca": "principal component", "tsne": "t-SNE dimension"}


def main() -> None:
    params = load_params()
    gp = params.generate
    make_deterministic(params.seed)
    device = select_device(params.device)
    model = load_model(MODEL_PATH, device)
    if model.config.latent_dim != params.latent_dim:
        raise ArtifactError(f"{MODEL_PATH} has latent_dim {model.config.latent_dim} but params.yaml has "
                            f"{params.latent_dim}; re-train it with `dvc repro train`")
    images, labels = load_split(DATA_DIR, "test")
    require_at_most("generate.n_interpolations", gp.n_interpolations, len(images) // 2,
                    "the test set (two images a row)")
    clusters = load_clusters(CLUSTERS_PATH, None, len(images))
    judge = load_judge(JUDGE_PATH, params.dataset, device)
    gen = generator(torch.device("cpu"), params.seed)

    # The reference: the judge's view of the test set, and its two halves against each other (the floor).
    test_probs, test_features = judge.predict(images)
    metrics = {"n_judged": gp.n_judged, "test_set": {
        "frechet_between_halves": frechet_distance(test_features[0::2], test_features[1::2]),
        **class_scores(test_probs, gp.confidence)}}
    mixture = None
    if "gmm" in gp.samplers:
        train_images, _ = load_split(DATA_DIR, "train")
        mixture = CodeMixture(encode_means(model, train_images.to(device)).numpy(), gp.gmm_components, params.seed)
    panels = {}
    for sampler in gp.samplers:
        samples = decode_probs(model, draw_codes(sampler, model, gp.n_judged, gen, mixture).to(device)).cpu()
        scores = metrics[sampler] = judged(*judge.predict(samples), test_features, gp.confidence)
        panels[f"{sampler}: {sampler_title(sampler, model, gp.gmm_components)}\n"
               f"Fréchet distance {scores['frechet']:.2f}, {scores['confident']:.0%} confident"] = \
            (samples[: gp.n_samples], int(gp.n_samples ** 0.5))

    with all_or_nothing():
        write_json(METRICS_PATH, metrics)
        image_grids(panels, f"{OUT_DIR}/samples.png")

        codes = encode_means(model, images.to(device))  # grey images: see vaepipe.latent.encode_means
        pairs = torch.randperm(len(images), generator=gen)[: 2 * gp.n_interpolations].view(2, -1)
        path = interpolate(codes[pairs[0]], codes[pairs[1]], gp.interpolation_steps)
        image_grids({f"Interpolations between the codes of {gp.n_interpolations} pairs of test images":
                     (decode_probs(model, path.to(device)), gp.interpolation_steps)}, f"{OUT_DIR}/interpolations.png")

        method = "identity" if params.latent_dim == 2 else gp.embedding
        axis = AXIS_NAMES[method]
        classes = DATASETS[params.dataset].classes
        # The UMAP map comes from the cluster stage, which has it at little cost (UMAP imported and compiled).
        points = clusters["test_map"] if gp.embedding == "umap" else embed_2d(codes.numpy(), gp.embedding, params.seed)
        latent_map(points,
                   {f"Test-set posterior means by class ({method}, latent_dim={params.latent_dim})":
                        (labels.numpy(), classes),
                    f"by cluster ({HEADLINE}), coloured as the class it is matched to":
                        matched_class_groups(labels.numpy(), clusters["test"], classes)},
                   (f"{axis} 1", f"{axis} 2"), f"{OUT_DIR}/latent_map.png")

        if params.latent_dim == 2:
            grid = manifold_grid(gp.manifold_size)
            image_grids({"Decoded 2-D latent space at evenly spaced prior quantiles":
                         (decode_probs(model, grid.to(device)), gp.manifold_size)}, f"{OUT_DIR}/manifold.png")


if __name__ == "__main__":
    run_stage(main)

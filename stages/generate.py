"""Stage `generate`: samples from each sampler and the reconstructions of the test images (what the decoder draws
from real codes: the ceiling), scored by the judge (metrics/generate.json), interpolations
between test digits, a 2-D latent map coloured by class and by the cluster stage's clusters, and (when
latent_dim == 2) the decoded manifold.

    dvc repro generate
    dvc exp run -S generate.samplers=[prior,gmm] -S generate.gmm_components=20
    dvc exp run -S code_prior.kind=diffusion -S code_prior.steps=3000   # another learned sampler
    dvc exp run -S latent_dim=2                  # adds the decoded 2-D manifold
"""

import torch

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import ArtifactError
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.runtime import generator, make_deterministic, provenance, select_device
from vaepipe.data.datasets import DATASETS, load_split
from vaepipe.figures.plots import image_grids, latent_map
from vaepipe.generation.judge import load_judge
from vaepipe.generation.sample_quality import caption, class_scores, frechet_distance, judged
from vaepipe.latent.clustering import load_clusters, matched_class_groups
from vaepipe.latent.embedding import embed_2d, interpolate, manifold_grid
from vaepipe.latent.samplers import draw_codes, fit_samplers, sampler_title
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import load_model

AXIS_NAMES = {"identity": "z", "umap": "UMAP dimension", "pca": "principal component", "tsne": "t-SNE dimension"}


def main() -> None:
    params = load_params()
    gp = params.generate
    make_deterministic(params.seed)
    device = select_device(params.device)
    model = load_model(paths.VAE, device)
    if model.config.latent_dim != params.latent_dim:
        raise ArtifactError(f"{paths.VAE} has latent_dim {model.config.latent_dim} but params.yaml has "
                            f"{params.latent_dim}; re-train it with `dvc repro train`")
    images, labels = load_split(paths.RAW, "test")
    require_at_most("generate.n_interpolations", gp.n_interpolations, len(images) // 2,
                    "the test set (two images a row)")
    clusters = load_clusters(paths.CLUSTERS, None, len(images))
    judge = load_judge(paths.JUDGE, params.dataset, device)
    gen = generator(torch.device("cpu"), params.seed)

    # The reference: the judge's view of the test set, and its two halves against each other (the floor).
    test_probs, test_features = judge.predict(images)
    metrics = {"n_judged": gp.n_judged, "test_set": {
        "frechet_between_halves": frechet_distance(test_features[0::2], test_features[1::2]),
        **class_scores(test_probs, gp.confidence)}, "run": provenance(device)}
    train_images, _ = load_split(paths.RAW, "train")
    grid_side = int(gp.n_samples ** 0.5)
    fitted = fit_samplers(gp.samplers, model, train_images, params)
    codes = posterior_means(model, images.to(device))  # grey images: see vaepipe.vae.codes.posterior_means
    # The ceiling: what the decoder draws from the codes of real images.
    reconstructions = decode_probs(model, codes.to(device)).cpu()
    metrics["reconstructions"] = judged(*judge.predict(reconstructions), test_features, gp.confidence)
    panels = {f"reconstructions of test images (the ceiling)\n{caption(metrics['reconstructions'])}":
              (reconstructions[: gp.n_samples], grid_side)}
    for sampler in gp.samplers:
        drawn = draw_codes(sampler, model, gp.n_judged, gen, fitted, params.code_prior.round_trips)
        samples = decode_probs(model, drawn.to(device)).cpu()
        scores = metrics[sampler] = judged(*judge.predict(samples), test_features, gp.confidence)
        title = sampler_title(sampler, model, gp.gmm_components, params.code_prior)
        panels[f"{sampler}: {title}\n{caption(scores)}"] = (samples[: gp.n_samples], grid_side)

    with all_or_nothing():
        write_json(paths.metrics("generate"), metrics)
        image_grids(panels, f"{paths.plots('generate')}/samples.png")

        pairs = torch.randperm(len(images), generator=gen)[: 2 * gp.n_interpolations].view(2, -1)
        path = interpolate(codes[pairs[0]], codes[pairs[1]], gp.interpolation_steps)
        image_grids({f"Interpolations between the codes of {gp.n_interpolations} pairs of test images":
                     (decode_probs(model, path.to(device)), gp.interpolation_steps)}, f"{paths.plots('generate')}/interpolations.png")

        method = "identity" if params.latent_dim == 2 else gp.embedding
        axis = AXIS_NAMES[method]
        classes = DATASETS[params.dataset].classes
        # The UMAP map comes from the cluster stage, which has it at little cost (UMAP imported and compiled).
        points = clusters["test_map"] if gp.embedding == "umap" else embed_2d(codes.numpy(), gp.embedding, params.seed)
        latent_map(points,
                   {f"Test-set posterior means by class ({method}, latent_dim={params.latent_dim})":
                        (labels.numpy(), classes),
                    "by cluster (metrics/cluster.json's headline), coloured as the class it is matched to":
                        matched_class_groups(labels.numpy(), clusters["test"], classes)},
                   (f"{axis} 1", f"{axis} 2"), f"{paths.plots('generate')}/latent_map.png")

        if params.latent_dim == 2:
            grid = manifold_grid(gp.manifold_size)
            image_grids({"Decoded 2-D latent space at evenly spaced prior quantiles":
                         (decode_probs(model, grid.to(device)), gp.manifold_size)}, f"{paths.plots('generate')}/manifold.png")


if __name__ == "__main__":
    run_stage(main)

"""Stage `style`: train the conditional VAE (vaepipe.generation.style) on the labelled training images, then render
test images' styles as every class and class-conditional samples, each scored by the judge
(metrics/style.json, plots/style). Resumable like the train stage, from its own checkpoint.

    dvc repro style
    dvc exp run -S style.latent_dim=8 -S style.epochs=40
"""

import dataclasses
from pathlib import Path

import torch

from vaepipe.core import paths
from vaepipe.core.artifacts import all_or_nothing, save_weights, write_json
from vaepipe.core.cli import run_stage
from vaepipe.core.params import load_params, require_at_most
from vaepipe.core.paths import CLASSES
from vaepipe.core.runtime import compiling_if_worth_it, generator, make_deterministic, provenance, select_device
from vaepipe.data.datasets import DATASETS, SPLIT_FILES, binarize_set, load_split
from vaepipe.figures.plots import labelled_rows
from vaepipe.generation.judge import load_judge, share_read_as
from vaepipe.generation.sample_quality import frechet_distance
from vaepipe.generation.style import class_conditional_samples, restyle
from vaepipe.latent.samplers import fit_code_prior
from vaepipe.vae.checkpoint import Checkpoint, fingerprint
from vaepipe.vae.codes import posterior_means
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.training import image_passes, split_train_val, train, validation_stats



def main() -> None:
    params = load_params()
    sp, tp = params.style, params.style.train_params(params.train)
    make_deterministic(params.seed)
    device = select_device(params.device)
    judge = load_judge(paths.JUDGE, params.dataset, device)
    test_x, test_y = load_split(paths.RAW, "test")
    require_at_most("style.n_judged", sp.n_judged, CLASSES * len(test_x), "the test set rendered as every class")
    images, labels = load_split(paths.RAW, "train")
    train_x, val_x = split_train_val(images, tp.val_size, params.seed, tp.train_subset)
    train_y, val_y = split_train_val(labels, tp.val_size, params.seed, tp.train_subset)
    config = VAEConfig.from_params(sp.latent_dim, tp, classes=CLASSES)
    model = VAE(config).to(device)
    print(f"training the conditional {config} on {len(train_x)} images ({device})")
    settings = {"seed": params.seed, "train": dataclasses.asdict(tp), "config": config.to_dict()}
    inputs = [Path(__file__), *(Path(paths.RAW) / name for name in SPLIT_FILES["train"])]
    checkpoint = Checkpoint(paths.STYLE_CHECKPOINT, fingerprint(settings, inputs))
    kept_epoch = train(model, train_x.to(device), binarize_set(val_x, tp.binarize).to(device), tp, params.seed,
                       lambda *epoch: None, checkpoint, labels=(train_y.to(device), val_y.to(device)))

    with compiling_if_worth_it(image_passes(len(train_x), tp)):  # compiled as its training was, or not
        test = validation_stats(model, binarize_set(test_x, tp.binarize).to(device), 1.0, params.seed, test_y.to(device))
    _, test_features = judge.predict(test_x)
    # The learned sampler: params `code_prior`, fitted to the training codes given their labels.
    density = (fit_code_prior(posterior_means(model, train_x.to(device), train_y.to(device)), params.code_prior,
                              params.seed) if sp.sampler == "learned" else None)
    samples, sample_labels = class_conditional_samples(model, sp.n_judged, generator(torch.device("cpu"), params.seed),
                                                       density, params.code_prior.round_trips)
    sample_probs, sample_features = judge.predict(samples)
    # The styles: the grey images' codes given their true labels (see vaepipe.vae.codes.posterior_means).
    styles = test_x[: sp.n_judged // CLASSES]
    restyled, restyled_labels = restyle(model, posterior_means(model, styles.to(device), test_y[: len(styles)].to(device)))
    metrics = {"latent_dim": sp.latent_dim, "kept_epoch": kept_epoch,
               "test_given_label": {"neg_elbo": test.neg_elbo, "recon": test.recon, "kl": test.kl},
               "class_conditional": {"n": len(samples), "read_as_intended": share_read_as(sample_probs, sample_labels),
                                     "frechet": frechet_distance(sample_features.numpy(), test_features.numpy())},
               "style_transfer": {"n": len(restyled),
                                  "read_as_intended": share_read_as(judge.predict(restyled)[0], restyled_labels)},
               "run": provenance(device, tp.precision)}

    names = DATASETS[params.dataset].classes
    with all_or_nothing():
        save_weights(paths.STYLE, model.state_dict(), config.to_dict())
        write_json(paths.metrics("style"), metrics)
        labelled_rows({"test image": styles[: sp.n_styles],
                       **{f"as {name}": restyled[c::CLASSES][: sp.n_styles] for c, name in enumerate(names)}},
                      f"Each test image's style rendered as every class (conditional VAE, latent_dim={sp.latent_dim}):"
                      f" the judge reads {metrics['style_transfer']['read_as_intended']:.1%} as intended",
                      f"{paths.plots('style')}/transfer.png")
        labelled_rows({name: samples[c::CLASSES][: sp.samples_per_class] for c, name in enumerate(names)},
                      f"Class-conditional samples, z from the {sp.sampler} sampler: the judge reads "
                      f"{metrics['class_conditional']['read_as_intended']:.1%} as intended",
                      f"{paths.plots('style')}/class_samples.png")
    checkpoint.remove()
    print(f"judged as intended: class-conditional samples {metrics['class_conditional']['read_as_intended']:.4f}, "
          f"style transfer {metrics['style_transfer']['read_as_intended']:.4f}")


if __name__ == "__main__":
    run_stage(main)

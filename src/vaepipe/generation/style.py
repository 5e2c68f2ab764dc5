"""Style transfer with a conditional VAE (vaepipe.vae.model, `classes` > 0): the label says which class an image
is, so z is left to say how it is drawn (slant, stroke width, size). Decoding one image's code with
every label renders its style as every class (Kingma et al. 2014's "analogies"); decoding a z drawn from the
prior N(0, I), or from a density fitted to the codes (vaepipe.latent.samplers), with a chosen label gives
class-conditional samples. The judge (vaepipe.generation.judge) scores both by whether it
reads the intended class."""

from __future__ import annotations

import torch

from vaepipe.latent.samplers import CodeSampler, round_trip
from vaepipe.vae.codes import decode_probs
from vaepipe.vae.model import VAE


def class_conditional_samples(model: VAE, n: int, gen: torch.Generator, density: CodeSampler | None = None,
                              round_trips: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples [n, 784] (pixel probabilities, on the CPU) and their labels: class i % classes for sample i, so
    every class is equally represented. Their z: from `density` if given (then `round_trips` trips through the
    model, each with its label), else z ~ N(0, I); drawn from the CPU generator `gen`."""
    device = next(model.parameters()).device
    labels = torch.arange(n) % model.config.classes
    if density is None:
        z = torch.randn(n, model.config.latent_dim, generator=gen)
    else:
        z = round_trip(model, density.sample(n, gen), round_trips, labels)
    return decode_probs(model, z.to(device), labels.to(device)).cpu(), labels


def restyle(model: VAE, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each code [N, latent_dim] decoded as every class: images [N * classes, 784] (on the CPU), image
    i * classes + c being code i as class c, and those classes."""
    classes = model.config.classes
    device = next(model.parameters()).device
    labels = torch.arange(classes).repeat(len(codes))
    return decode_probs(model, codes.repeat_interleave(classes, 0).to(device), labels.to(device)).cpu(), labels


"""Style transfer with a conditional VAE (vaepipe.vae.model, `classes` > 0): the label says which class an image
is, so z is left to say how it is drawn (slant, stroke width, size). Decoding one image's code with
every label renders its style as every class (Kingma et al. 2014's "analogies"); decoding z ~ N(0, I)
with a chosen label gives class-conditional samples. The judge (vaepipe.generation.judge) scores both by whether it
reads the intended class."""

from __future__ import annotations

import torch

from vaepipe.vae.codes import decode_probs
from vaepipe.vae.model import VAE


def class_conditional_samples(model: VAE, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples [n, 784] (pixel probabilities, on the CPU) from z ~ N(0, I) drawn from the CPU generator
    `gen`, and their labels: class i % classes for sample i, so every class is equally represented."""
    device = next(model.parameters()).device
    labels = torch.arange(n) % model.config.classes
    z = torch.randn(n, model.config.latent_dim, generator=gen)
    return decode_probs(model, z.to(device), labels.to(device)).cpu(), labels


def restyle(model: VAE, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each code [N, latent_dim] decoded as every class: images [N * classes, 784] (on the CPU), image
    i * classes + c being code i as class c, and those classes."""
    classes = model.config.classes
    device = next(model.parameters()).device
    labels = torch.arange(classes).repeat(len(codes))
    return decode_probs(model, codes.repeat_interleave(classes, 0).to(device), labels.to(device)).cpu(), labels


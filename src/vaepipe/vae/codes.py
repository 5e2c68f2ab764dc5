"""The model's codes of images, and images of codes, in batches without gradients."""

from __future__ import annotations

import torch

from vaepipe.vae.model import VAE

ENCODE_BATCH = 4096


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor, labels: torch.Tensor | None = None, batch: int = ENCODE_BATCH
                    ) -> torch.Tensor:
    """Posterior means mu(x) for every image, on the CPU (mu(x, y), with a conditional model's `labels`), `batch`
    images a network call (the lossy codec fixes its own, so both ends of a file compute the same codes).

    The stages that use codes as a representation (generate, downstream) pass the grey images, even when
    training binarises dynamically: a binarisation is sampling noise drawn for the Bernoulli likelihood,
    not part of the digit, and the codes of the grey images carry more of the digit. Measured with the
    default model on the validation split: 5-NN 0.9777 and logistic regression 0.8822 with grey codes,
    0.9714 and 0.8698 with the codes of one fixed binarisation (better with every label budget too).
    Where a likelihood is computed (evaluate), q(z|x) is of the binary image being scored.
    """
    model.eval()
    return torch.cat([model.encode(x[i:i + batch], None if labels is None else labels[i:i + batch])[0].cpu()
                      for i in range(0, len(x), batch)])


@torch.no_grad()
def decode_probs(model: VAE, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel probabilities (Bernoulli means) for latent codes `z` (of class `labels`, for a conditional model)."""
    model.eval()
    return torch.sigmoid(model.decode(z, labels))

"""The negative ELBO of a batch and its exact gradient for the MLP VAE, without autograd.

Why: at batch 128 on a CPU, autograd's per-node bookkeeping and per-step allocations cost about as
much as the arithmetic itself. The backward pass of an MLP is a few matrix multiplies, written here
once, straight into the parameters' `.grad` buffers. tests/test_gradients.py checks every gradient
against autograd's.
"""

from __future__ import annotations

import torch
from torch import nn

from vaepipe.model import VAE
from vaepipe.objectives import bernoulli_nll_and_grad, gaussian_kl


def _linear_layers(stack: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of a Linear-ReLU-...-Linear stack (the only shape `model.mlp` builds)."""
    modules = list(stack)
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(modules))]
    if len(modules) % 2 == 0 or [type(m) for m in modules] != expected:
        raise ValueError(f"expected alternating Linear and ReLU layers, got {[type(m).__name__ for m in modules]}")
    return modules[::2]


def _forward(layers: list[nn.Linear], h: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every layer, then the output; ReLU between layers (in place: its output is its own mask)."""
    activations = [h]
    for i, layer in enumerate(layers):
        h = torch.addmm(layer.bias, h, layer.weight.t())
        if i < len(layers) - 1:
            h.relu_()
        activations.append(h)
    return activations


def _backward(layers: list[nn.Linear], activations: list[torch.Tensor], grad: torch.Tensor,
              need_input_grad: bool) -> torch.Tensor | None:
    """Write each layer's weight and bias gradients; return the gradient w.r.t. the stack's input."""
    for i in range(len(layers) - 1, -1, -1):
        layer, inputs = layers[i], activations[i]
        torch.mm(grad.t(), inputs, out=layer.weight.grad)
        torch.sum(grad, 0, out=layer.bias.grad)
        if i == 0 and not need_input_grad:
            return None
        grad = grad.mm(layer.weight)
        if i > 0:
            # ReLU': the stored input of this layer is the previous ReLU's output; zero where it is 0.
            grad = torch.ops.aten.threshold_backward(grad, inputs, 0)
    return grad


class ELBOGradient:
    """Callable on (x, noise, beta): returns the batch means (loss, recon, kl) and leaves d loss / d param in
    `.grad`. loss = recon + beta * kl, exactly as `objectives.neg_elbo`; z = mu + noise * exp(logvar / 2).
    """

    def __init__(self, model: VAE):
        self.encoder = _linear_layers(model.encoder)
        self.decoder = _linear_layers(model.decoder)
        self.latent_dim = model.config.latent_dim
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, noise: torch.Tensor, beta: float) -> torch.Tensor:
        n, latent_dim = len(x), self.latent_dim
        encoder_acts = _forward(self.encoder, x)
        mu, logvar = encoder_acts[-1].split(latent_dim, dim=1)
        std = torch.exp(0.5 * logvar)
        z = torch.addcmul(mu, noise, std)
        decoder_acts = _forward(self.decoder, z)

        recon_sum, grad_logits = bernoulli_nll_and_grad(decoder_acts[-1], x, 1.0 / n)
        recon = recon_sum / n
        kl = gaussian_kl(mu, logvar).mean()

        grad_z = _backward(self.decoder, decoder_acts, grad_logits, need_input_grad=True)
        # d/dmu and d/dlogvar of the reparameterised sample plus beta * KL (both per-image means).
        grad_mu = torch.add(grad_z, mu, alpha=beta / n)
        grad_logvar = grad_z.mul_(noise).mul_(0.5 * std).add_(std * std - 1, alpha=0.5 * beta / n)
        _backward(self.encoder, encoder_acts, torch.cat([grad_mu, grad_logvar], dim=1), need_input_grad=False)
        return torch.stack([recon + beta * kl, recon, kl])

"""The negative ELBO of a batch and its exact gradient for the MLP VAE, without autograd.

Why: at batch 128 on a CPU, autograd's per-node bookkeeping and per-step allocations cost about as
much as the arithmetic itself. The backward pass of an MLP is a few matrix multiplies, written here
once, straight into the parameters' `.grad` buffers. tests/test_gradients.py checks every gradient
against autograd's.

In bfloat16 (`dtype=torch.bfloat16`) the matrix multiplies read bf16 copies of the float32 weights,
made afresh each step, and accumulate in float32 inside the kernel; their bf16 gradients are copied
into the float32 `.grad` buffers, so the optimiser's weights and moments stay float32. The latent
parameters, the sampled z, the loss, the KL and their gradients are computed in float32, and so are
the layers into and out of the latent space: at widths under BF16_MIN_WIDTH, bf16 multiplies were
slower than float32 ones here (batch 128: 94 against 63 us for a 400 -> 20 layer's three products).

The step runs as one `torch.compile` graph (`_elbo_step`), its matrix multiplies still oneDNN's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from vaepipe.core.runtime import compiled
from vaepipe.vae.model import VAE, append_one_hot
from vaepipe.vae.objectives import bernoulli_nll_and_grad, gaussian_kl

# A layer computes in bf16 only when both its widths are at least this (measured: bf16 pays from 128 on).
BF16_MIN_WIDTH = 128


class _Layer(NamedTuple):
    """The tensors one Linear layer's matrix multiplies read and write, in the compute precision."""

    weight: torch.Tensor
    bias: torch.Tensor
    weight_grad: torch.Tensor
    bias_grad: torch.Tensor


def _linear_layers(stack: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of a Linear-ReLU-...-Linear stack (the only shape `model.mlp` builds)."""
    modules = list(stack)
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(modules))]
    if len(modules) % 2 == 0 or [type(m) for m in modules] != expected:
        raise ValueError(f"expected alternating Linear and ReLU layers, got {[type(m).__name__ for m in modules]}")
    return modules[::2]


def _forward(layers: list[_Layer], h: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every layer (in its precision), then the output; ReLU between layers (in place: its output
    is its own mask)."""
    activations = []
    for i, layer in enumerate(layers):
        h = h.to(layer.weight.dtype)
        activations.append(h)
        h = torch.addmm(layer.bias, h, layer.weight.t())
        if i < len(layers) - 1:
            h.relu_()
    activations.append(h)
    return activations


def _backward(layers: list[_Layer], activations: list[torch.Tensor], grad: torch.Tensor,
              need_input_grad: bool) -> torch.Tensor | None:
    """Write each layer's weight and bias gradients; return the gradient w.r.t. the stack's input."""
    for i in range(len(layers) - 1, -1, -1):
        layer, inputs = layers[i], activations[i]
        grad = grad.to(layer.weight.dtype)
        torch.mm(grad.t(), inputs, out=layer.weight_grad)
        torch.sum(grad, 0, out=layer.bias_grad)
        if i == 0 and not need_input_grad:
            return None
        grad = grad.mm(layer.weight)
        if i > 0:
            # ReLU': the stored input of this layer is the previous ReLU's output; zero where it is 0.
            grad = torch.ops.aten.threshold_backward(grad, inputs, 0)
    return grad


# One compiled graph for the whole step, per model shape and batch size (dynamic=False keeps each one's kernels
# specialised; an epoch's last, smaller batch gets its own): it fuses the elementwise work around the matrix
# multiplies and removes ~100 eager calls a step. Canonical model, AMX Xeon, 2 cores: a bf16 epoch 0.86 s against
# 1.09 s eager, fp32 1.13 s against 1.25 s; compiling costs the first epoch 4-8 s (2 s from the on-disk cache).
# Its arguments are plain tensors, so models of the same shape share a graph; the limit leaves room for the many
# small models a test session trains.
@compiled(dynamic=False, recompile_limit=64)
@torch.no_grad()
def _elbo_step(encoder: list[_Layer], decoder: list[_Layer], refresh: tuple[list, list, list, list],
               x: torch.Tensor, noise: torch.Tensor, beta: torch.Tensor, labels: torch.Tensor | None,
               latent_dim: int, classes: int) -> torch.Tensor:
    params, grads, low_params, low_grads = refresh
    n = len(x)
    if low_params:
        torch._foreach_copy_(low_params, params)
    encoder_acts = _forward(encoder, append_one_hot(x, labels, classes))
    mu, logvar = encoder_acts[-1].float().split(latent_dim, dim=1)
    std = torch.exp(0.5 * logvar)
    z = torch.addcmul(mu, noise, std)
    decoder_acts = _forward(decoder, append_one_hot(z, labels, classes))

    recon_sum, grad_logits = bernoulli_nll_and_grad(decoder_acts[-1], x, 1.0 / n)
    recon = recon_sum / n
    kl = gaussian_kl(mu, logvar).mean()

    # The decoder's input is z (then the label, for a conditional model, which needs no gradient).
    grad_z = _backward(decoder, decoder_acts, grad_logits, need_input_grad=True)[:, :latent_dim].float()
    # d/dmu and d/dlogvar of the reparameterised sample plus beta * KL (both per-image means).
    grad_mu = grad_z + mu * (beta / n)
    grad_logvar = grad_z * noise * (0.5 * std) + (std * std - 1) * (0.5 * beta / n)
    _backward(encoder, encoder_acts, torch.cat([grad_mu, grad_logvar], dim=1), need_input_grad=False)
    if low_grads:
        torch._foreach_copy_(grads, low_grads)
    return torch.stack([recon + beta * kl, recon, kl])


class ELBOGradient:
    """Callable on (x, noise, beta[, labels]): returns the batch means (loss, recon, kl) in float32 and leaves
    d loss / d param in `.grad`. loss = recon + beta * kl, exactly as `objectives.negative_bound`'s -ELBO; z = mu + noise *
    exp(logvar / 2). A conditional model takes the images' `labels`, appended one-hot to the encoder's and the
    decoder's inputs. `dtype` is the precision of the matrix multiplies (float32 or bfloat16).
    """

    def __init__(self, model: VAE, dtype: torch.dtype = torch.float32):
        self.latent_dim, self.classes, self.dtype = model.config.latent_dim, model.config.classes, dtype
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        # Float32 layers multiply the parameters and gradients themselves; bf16 ones copies, listed here.
        self.params, self.grads, self.low_params, self.low_grads = [], [], [], []
        self.encoder, self.decoder = (self._compute_layers(stack) for stack in (model.encoder, model.decoder))
        # beta as a device tensor: a float would be compiled in as a constant (the KL warm-up changes it every
        # step), and a new tensor a step would be a copy from the host that waits for the GPU.
        self.beta = torch.zeros((), device=model.encoder[0].weight.device)

    def _compute_layers(self, stack: nn.Sequential) -> list[_Layer]:
        layers = []
        for linear in _linear_layers(stack):
            tensors = [linear.weight.detach(), linear.bias.detach(), linear.weight.grad, linear.bias.grad]
            if self.dtype != torch.float32 and min(linear.in_features, linear.out_features) >= BF16_MIN_WIDTH:
                low = [torch.empty_like(t, dtype=self.dtype) for t in tensors]
                self.params += tensors[:2]
                self.grads += tensors[2:]
                self.low_params += low[:2]
                self.low_grads += low[2:]
                tensors = low
            layers.append(_Layer(*tensors))
        return layers

    def __call__(self, x: torch.Tensor, noise: torch.Tensor, beta: float, labels: torch.Tensor | None = None
                 ) -> torch.Tensor:
        return _elbo_step(self.encoder, self.decoder, (self.params, self.grads, self.low_params, self.low_grads),
                          x, noise, self.beta.fill_(beta), labels, self.latent_dim, self.classes)

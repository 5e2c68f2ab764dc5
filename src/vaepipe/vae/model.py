"""The VAE family: Gaussian encoder q(z|x), Bernoulli decoder p(x|z) (logits), and a prior p(z).

- `arch`: `mlp` (fully connected; `hidden` are layer widths) or `conv` (strided 4x4 convolutions that
  halve 28 -> 14 -> 7, `hidden` are their channel counts, then one linear layer to the latents; the
  decoder mirrors it with transposed convolutions).
- `prior`: `normal`, `mog` or `vamp`, each a class of vaepipe.vae.priors (with `prior_components` components).
- `classes` > 0: a conditional VAE (Kingma et al. 2014; Sohn et al. 2015), q(z|x, y) and p(x|z, y), the
  one-hot class label an extra input of the encoder and of the decoder, so z is left to hold the style.
  An MLP with a normal prior (the style stage's model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from vaepipe.core.artifacts import load_weights
from vaepipe.core.errors import ArtifactError
from vaepipe.core.params import ARCHS, CONV_LAYERS, TrainParams
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE
from vaepipe.vae.priors import PRIORS

# Names the prior's parameters had in files written before the priors became modules of their own.
LEGACY_KEYS = {"prior_means": "prior.means", "prior_logvars": "prior.logvars", "prior_logits": "prior.logits",
               "pseudo_inputs": "prior.pseudo_inputs"}


@dataclass(frozen=True)
class VAEConfig:
    """Everything needed to rebuild the model from a weights file."""

    arch: str
    latent_dim: int
    hidden: tuple[int, ...]
    input_dim: int = IMAGE_PIXELS
    prior: str = "normal"
    prior_components: int = 0
    classes: int = 0  # > 0: conditional on a class label (see the module docstring)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, latent_dim: int, train: TrainParams, classes: int = 0) -> "VAEConfig":
        """The model `train` params describe (a normal prior has no components)."""
        components = 0 if train.prior == "normal" else train.prior_components
        return cls(arch=train.arch, latent_dim=latent_dim, hidden=train.hidden, prior=train.prior,
                   prior_components=components, classes=classes)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        return cls(arch=d["arch"], latent_dim=int(d["latent_dim"]), hidden=tuple(d["hidden"]),
                   input_dim=int(d["input_dim"]), prior=d["prior"], prior_components=int(d["prior_components"]),
                   classes=int(d.get("classes", 0)))  # files from before conditional models lack the key


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def conv_encoder(channels: tuple[int, ...], out_features: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Unflatten(-1, (1, IMAGE_SIDE, IMAGE_SIDE))]
    for n_in, n_out in zip((1, *channels[:-1]), channels):
        layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
    side = IMAGE_SIDE >> len(channels)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * side * side, out_features))


def conv_decoder(channels: tuple[int, ...], latent_dim: int) -> nn.Sequential:
    side = IMAGE_SIDE >> len(channels)
    layers: list[nn.Module] = [nn.Linear(latent_dim, channels[-1] * side * side), nn.ReLU(),
                               nn.Unflatten(-1, (channels[-1], side, side))]
    outs = (*reversed(channels[:-1]), 1)
    for i, (n_in, n_out) in enumerate(zip(reversed(channels), outs)):
        layers.append(nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1))
        if i < len(channels) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers, nn.Flatten())


def append_one_hot(inputs: torch.Tensor, labels: torch.Tensor | None, classes: int) -> torch.Tensor:
    """`inputs` [..., B, n] with the one-hot `labels` [B] of `classes` appended; `inputs` themselves for `classes` 0."""
    if (labels is None) != (classes == 0):
        raise ValueError("a conditional model needs class labels" if classes else "an unconditional model takes no class labels")
    if labels is None:
        return inputs
    one_hot = nn.functional.one_hot(labels, classes).to(inputs.dtype)
    return torch.cat([inputs, one_hot.expand(*inputs.shape[:-1], classes)], -1)


class VAE(nn.Module):
    """`hidden=(400,)`, `latent_dim=20`, mlp, normal prior is the canonical pytorch/examples model 784-400-20-400-784."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.arch not in ARCHS:
            raise ValueError(f"unknown arch {config.arch!r}")
        if config.prior not in PRIORS:
            raise ValueError(f"unknown prior {config.prior!r}")
        if config.arch == "conv" and len(config.hidden) not in CONV_LAYERS:
            raise ValueError(f"a conv model has {' or '.join(map(str, CONV_LAYERS))} layers, not {len(config.hidden)}")
        if config.classes and (config.arch, config.prior) != ("mlp", "normal"):
            raise ValueError("a conditional model is an mlp with a normal prior")
        self.config = config
        # One head emits mean and log-variance together: a single matmul instead of two.
        if config.arch == "mlp":
            self.encoder = mlp([config.input_dim + config.classes, *config.hidden, 2 * config.latent_dim])
            self.decoder = mlp([config.latent_dim + config.classes, *reversed(config.hidden), config.input_dim])
        else:
            self.encoder = conv_encoder(config.hidden, 2 * config.latent_dim)
            self.decoder = conv_decoder(config.hidden, config.latent_dim)
        self.prior = PRIORS[config.prior](latent_dim=config.latent_dim, components=config.prior_components,
                                          input_dim=config.input_dim, encode=self.encode)

    def with_label(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """`inputs` [..., B, n] with the one-hot `labels` [B] appended, for a conditional model; as they are otherwise."""
        return append_one_hot(inputs, labels, self.config.classes)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x) (of q(z|x, y) with `labels`, for a conditional model)."""
        mu, logvar = self.encoder(self.with_label(x, labels)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli logits of p(x|z) (p(x|z, y) with `labels`); sigmoid gives pixel probabilities. `z` may
        have leading sample dims."""
        if self.config.arch == "mlp":
            return self.decoder(self.with_label(z, labels))
        return self.decoder(z.reshape(-1, z.shape[-1])).view(*z.shape[:-1], -1)


def load_model(path: str, device: torch.device) -> VAE:
    """Rebuild the VAE from a weights file written by the train stage."""
    state_dict, config = load_weights(path)
    state_dict = {LEGACY_KEYS.get(name, name): tensor for name, tensor in state_dict.items()}
    try:
        model = VAE(VAEConfig.from_dict(config))
        model.load_state_dict(state_dict)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        # load_state_dict's first line is a bare header; the next one names the first tensor that does not fit.
        reason = lines[1].strip().rstrip(".") if len(lines) > 1 else lines[0]
        raise ArtifactError(f"{path}: weights do not fit the model described in the file ({reason})") from None
    return model.to(device)

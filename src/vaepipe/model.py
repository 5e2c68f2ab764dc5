"""The VAE: Gaussian encoder q(z|x), Bernoulli decoder p(x|z) (logits), standard normal prior."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from vaepipe.artifacts import load_weights
from vaepipe.data import IMAGE_PIXELS
from vaepipe.errors import ArtifactError


@dataclass(frozen=True)
class VAEConfig:
    """Everything needed to rebuild the model from a weights file."""

    arch: str
    latent_dim: int
    hidden: tuple[int, ...]
    input_dim: int = IMAGE_PIXELS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        return cls(arch=d["arch"], latent_dim=int(d["latent_dim"]), hidden=tuple(d["hidden"]),
                   input_dim=int(d["input_dim"]))


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """`hidden=(400,)`, `latent_dim=20` is the canonical pytorch/examples model 784-400-20-400-784."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.arch != "mlp":
            raise ValueError(f"unknown arch {config.arch!r}")
        self.config = config
        widths = [config.input_dim, *config.hidden]
        # One head emits mean and log-variance together: a single matmul instead of two.
        self.encoder = mlp([*widths, 2 * config.latent_dim])
        self.decoder = mlp([config.latent_dim, *reversed(widths)])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x|z); sigmoid gives pixel probabilities."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return mu + noise * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the reconstruction, and the posterior's mean and log-variance.

        The caller draws `noise` ~ N(0, I) from its own seeded generator, keeping runs reproducible.
        """
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, noise)), mu, logvar


def load_model(path: str, device: torch.device) -> VAE:
    """Rebuild the VAE from a weights file written by the train stage."""
    state_dict, config = load_weights(path)
    try:
        model = VAE(VAEConfig.from_dict(config))
        model.load_state_dict(state_dict)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        # load_state_dict's first line is a bare header; the next one names the first tensor that does not fit.
        reason = lines[1].strip().rstrip(".") if len(lines) > 1 else lines[0]
        raise ArtifactError(f"{path}: weights do not fit the model described in the file ({reason})") from None
    return model.to(device)

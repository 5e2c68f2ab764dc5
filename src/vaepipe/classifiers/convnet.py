"""CNN classifiers of 28 x 28 images and their seeded training: the small one is the judge that scores generated
images (generation/judge.py) and the network that self-labels the clusters of the codes (latent/self_labelling.py);
the wide one learns few labels with the named clusters (latent/self_labelling.py, studies/fewlabels)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaepipe.core.paths import CLASSES, IMAGE_SIDE
from vaepipe.core.runtime import autocast, compute_dtype

FEATURES = 128
PREDICT_BATCH = 2000
# The random affine map of `augment`: rotation up to this many degrees, scaling by up to this share either way,
# a shift of up to this share of the half-width (1.4 pixels) on each axis.
MAX_DEGREES, MAX_SCALE, MAX_SHIFT = 10.0, 0.1, 0.1


class ImageClassifier(nn.Module):
    """Convolutional `features` of flat [N, 784] images ending in a FEATURES-unit layer, then the class logits."""

    def __init__(self, features: nn.Sequential, classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities [N, classes] and penultimate features [N, 128] of flat [N, 784] images, on the CPU."""
        self.eval()
        device = next(self.parameters()).device
        probs, features = [], []
        for batch in x.split(PREDICT_BATCH):
            f = self.features(batch.to(device))
            features.append(f.cpu())
            probs.append(torch.softmax(self.head(f), dim=1).cpu())
        return torch.cat(probs), torch.cat(features)


def conv_block(channels_in: int, channels_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=kernel // 2),
            nn.BatchNorm2d(channels_out), nn.ReLU()]


class ConvNet(ImageClassifier):
    """Two strided convolutions (5x5 then 3x3: 28 -> 14 -> 7, downsampling without pooling layers), each with
    batch norm, a 128-unit feature layer and the class logits. Chosen for the judge on validation accuracy among
    a few such nets that train in under 90 s on 2 CPU cores (docs/results.md, "Sample quality")."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__(nn.Sequential(
            nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE)), *conv_block(1, 32, 5, stride=2), *conv_block(32, 64, 3, stride=2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURES), nn.ReLU()), classes)


class WideConvNet(ImageClassifier):
    """Four 3x3 convolutions (32, 32, 64, 64 channels, batch norm), a 2x2 max-pool after each pair (28 -> 14 -> 7),
    a 128-unit feature layer and the class logits: every pixel seen at full resolution, about 4x the small net's
    compute. On MNIST's named clusters and 100 labels: validation accuracy 0.9846 against the small net's 0.9823."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__(nn.Sequential(
            nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE)),
            *conv_block(1, 32, 3), *conv_block(32, 32, 3), nn.MaxPool2d(2),
            *conv_block(32, 64, 3), *conv_block(64, 64, 3), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURES), nn.ReLU()), classes)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each flat image [N, 784] rotated, scaled and shifted at random (uniform up to MAX_DEGREES, MAX_SCALE and
    MAX_SHIFT), bilinearly resampled, zeros coming in at the edges; the draws from `generator` (on the CPU)."""
    n = len(x)
    angle, scale, shift = (torch.rand(n, 4, generator=generator) * 2 - 1).to(x.device).split([1, 1, 2], dim=1)
    angle, scale = angle.squeeze(1) * math.radians(MAX_DEGREES), 1 + scale.squeeze(1) * MAX_SCALE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0] * MAX_SHIFT], 1),
                         torch.stack([sin, cos, shift[:, 1] * MAX_SHIFT], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, IMAGE_SIDE, IMAGE_SIDE], align_corners=False)
    return F.grid_sample(x.view(n, 1, IMAGE_SIDE, IMAGE_SIDE), grid, align_corners=False).view(n, -1)


def train_convnet(x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
                  precision: str, device: torch.device, classes: int = CLASSES, augmented: bool = False,
                  network: type[ImageClassifier] = ConvNet, log_epoch=lambda epoch, loss: None) -> ImageClassifier:
    """A fresh `network` trained by Adam with a per-step cosine decay of the learning rate to 0, on seeded shuffles
    of the images [N, 784] and their classes `y` (0 .. classes - 1); each batch through `augment` when `augmented`.
    `precision` bf16 runs the forward and backward passes under bf16 autocast (float32 weights and Adam)."""
    torch.manual_seed(seed)  # the initial weights
    net = network(classes).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    order_gen, augment_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    x, y = x.to(device), y.to(device)
    dtype = compute_dtype(precision, device)
    for epoch in range(1, epochs + 1):
        net.train()
        total = torch.zeros((), device=device)
        # One copy of the epoch's order to the device: a copy a batch would wait for the device every step.
        for batch in torch.randperm(len(x), generator=order_gen).to(device).split(batch_size):
            images = augment(x[batch], augment_gen) if augmented else x[batch]
            with autocast(dtype, device):
                logits = net(images)
            loss = F.cross_entropy(logits.float(), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach() * len(batch)
        log_epoch(epoch, total.item() / len(x))
    return net.eval()

"""The canonical recipe, re-implemented faithfully for timing: pytorch/examples `vae/main.py`.

MLP 784-400-20-400-784 with ReLU and a sigmoid output, BCE(sum) + analytic KL, Adam lr 1e-3, batch
128, MNIST through torchvision's `MNIST` dataset + `ToTensor` + `DataLoader(shuffle=True)`, the loss
read back with `.item()` every step. Only the per-batch log print is left out (it costs nothing
measurable and would flood the benchmark's output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim
from torchvision import datasets, transforms


class CanonicalVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def train_loader(mnist_root: str, batch_size: int = 128, images: int = 0) -> torch.utils.data.DataLoader:
    """`mnist_root` must hold MNIST/raw/ with the four decompressed IDX files; `images` > 0: only the first ones."""
    dataset = datasets.MNIST(mnist_root, train=True, download=False, transform=transforms.ToTensor())
    if images:
        dataset = torch.utils.data.Subset(dataset, range(images))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def train_epoch(model: CanonicalVAE, optimizer: optim.Optimizer, loader, device: torch.device) -> float:
    """One epoch exactly as the example's `train()`; returns the mean loss per image."""
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(loader.dataset)

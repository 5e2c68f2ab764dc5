"""Figures: image grids through torchvision, scatter plots through matplotlib; written atomically and
without timestamps or version strings, so the same data gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import save_image

from vaepipe.artifacts import atomic_path
from vaepipe.data import IMAGE_SIDE


def save_grid(images: torch.Tensor, nrow: int, path: str | Path) -> None:
    """Flat [N, 784] images in [0, 1] as a PNG grid with `nrow` images per row."""
    grid = images.detach().cpu().reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, nrow=nrow, padding=2, pad_value=1.0, format="png")


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def latent_map(points: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], title: str,
               axis_labels: tuple[str, str], path: str | Path) -> None:
    """2-D points coloured by class, one legend entry per class."""
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(class_names):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=2, alpha=0.6, color=plt.cm.tab10(c), label=name)
    ax.set_title(title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.legend(markerscale=6, fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path)

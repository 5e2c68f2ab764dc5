"""Figures: image grids through torchvision, scatter plots through matplotlib; written atomically and
without timestamps or version strings, so the same data gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid, save_image

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


def latent_map(points: np.ndarray, colourings: dict[str, tuple[np.ndarray, tuple[str, ...]]],
               axis_labels: tuple[str, str], path: str | Path) -> None:
    """2-D points in one panel per colouring, {panel title: (each point's group index, group names)},
    one legend entry per group; group g has the same colour in every panel."""
    fig, axes = plt.subplots(1, len(colourings), figsize=(7 * len(colourings), 6), squeeze=False)
    palette = plt.cm.tab10 if max(len(names) for _, names in colourings.values()) <= 10 else plt.cm.tab20
    for ax, (panel_title, (groups, names)) in zip(axes[0], colourings.items()):
        for g, name in enumerate(names):
            sel = groups == g
            ax.scatter(points[sel, 0], points[sel, 1], s=2, alpha=0.6, color=palette(g % palette.N), label=name)
        ax.set_title(panel_title)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.legend(markerscale=6, fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def labelled_rows(rows: dict[str, torch.Tensor], title: str, path: str | Path) -> None:
    """One row of flat [n, 784] images per entry, its label on the left."""
    grids = {label: images.detach().cpu().reshape(-1, IMAGE_SIDE, IMAGE_SIDE) for label, images in rows.items()}
    per_row = max(len(images) for images in grids.values())
    fig, axes = plt.subplots(len(grids), 1, figsize=(0.5 * per_row + 2.2, 0.55 * len(grids) + 0.6), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], grids.items()):
        strip = make_grid(images.unsqueeze(1), nrow=per_row, padding=2, pad_value=1.0)[0]
        ax.imshow(strip.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def histograms(panels: dict[tuple[str, str], dict[str, np.ndarray]], title: str, path: str | Path) -> None:
    """A grid of histograms, rows and columns named by the (row, column) keys; each panel overlays its groups."""
    row_names = list(dict.fromkeys(r for r, _ in panels))
    col_names = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(row_names), len(col_names), figsize=(3.2 * len(col_names), 2.6 * len(row_names)),
                             squeeze=False)
    for (row, col), groups in panels.items():
        ax = axes[row_names.index(row), col_names.index(col)]
        # Zoomed on the first group (the normal images): anomalies far in the tail pile up in the last bin.
        low, high = np.percentile(next(iter(groups.values())), [0.5, 99.5])
        low = min(low, *(np.percentile(group, 0.5) for group in groups.values()))
        bins = np.linspace(low, high + 3 * (high - low), 60)
        for name, group in groups.items():
            ax.hist(np.clip(group, bins[0], bins[-1]), bins=bins, density=True, alpha=0.5, label=name)
        ax.set_title(f"{row}: {col}", fontsize=9)
        ax.set_xlabel(f"{col} score")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)

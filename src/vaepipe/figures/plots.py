"""Figures: image grids and scatter plots through matplotlib; written atomically and
without timestamps or version strings, so the same data gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from vaepipe.core.artifacts import atomic_path
from vaepipe.core.paths import IMAGE_SIDE

FIGURE_DPI = 100


# Digits are drawn at this many screen pixels per image pixel (28 -> 56), by repetition (nearest neighbour).
DIGIT_SCALE = 2
GRID_PADDING = 2  # image pixels between digits


def tiled(images: torch.Tensor, per_row: int) -> torch.Tensor:
    """[N, 28, 28] images as one [rows, columns] image, `per_row` a row (fewer if there are fewer), with
    `GRID_PADDING` white pixels around each: torchvision's make_grid without importing torchvision (whose import
    takes over a second, at the start of every stage)."""
    columns = min(per_row, len(images))
    rows = -(-len(images) // columns)
    blank = images.new_ones(rows * columns - len(images), *images.shape[1:])
    cells = F.pad(torch.cat([images, blank]), (GRID_PADDING, 0, GRID_PADDING, 0), value=1.0)  # padding above, left
    cell = cells.shape[-1]
    grid = cells.reshape(rows, columns, cell, cell).permute(0, 2, 1, 3).reshape(rows * cell, columns * cell)
    return F.pad(grid, (0, GRID_PADDING, 0, GRID_PADDING), value=1.0)  # and below and right of the last


def image_grids(panels: dict[str, tuple[torch.Tensor, int]], path: str | Path, scale: int = DIGIT_SCALE) -> None:
    """Titled grids side by side, {title: (flat [N, 784] images in [0, 1], images per row)}; each grid is drawn
    pixel for pixel, every digit enlarged `scale` times, so nothing is resampled or blurred."""
    grids = {}
    for title, (images, nrow) in panels.items():
        grid = tiled(images.detach().cpu().reshape(-1, IMAGE_SIDE, IMAGE_SIDE), nrow)
        grids[title] = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).numpy()
    # Each grid is centred in a slot wide enough for its title too (about 7 px a character at 9 pt).
    slots = {title: max(grid.shape[1], 7 * max(map(len, title.splitlines()))) for title, grid in grids.items()}
    margin, title_height = 16, 16 + 14 * max(title.count("\n") + 1 for title in grids)
    width = sum(slots.values()) + margin * (len(grids) + 1)
    height = max(grid.shape[0] for grid in grids.values()) + title_height + margin
    fig = plt.figure(figsize=(width / FIGURE_DPI, height / FIGURE_DPI), dpi=FIGURE_DPI)
    left = margin
    for title, grid in grids.items():
        rows, cols = grid.shape
        x = left + (slots[title] - cols) // 2
        ax = fig.add_axes((x / width, (height - title_height - rows) / height, cols / width, rows / height))
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
        left += slots[title] + margin
    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
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
    # 0.6 inch (60 px) an image cell of 30 px (28 and the padding): digits drawn twice their size.
    fig, axes = plt.subplots(len(grids), 1, figsize=(0.6 * per_row + 2.2, 0.66 * len(grids) + 0.6), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], grids.items()):
        strip = tiled(images, per_row)
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


def rate_distortion_curves(points, path: str | Path) -> None:
    """Accuracy and PSNR against bytes an image (log scale), a line per codec, from a table of points with columns
    codec, bytes_per_image, accuracy, psnr_db (pandas)."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for codec, rows in points.groupby("codec", sort=True):
        rows = rows.sort_values("bytes_per_image")
        style = {"marker": "o", "markersize": 3, "linewidth": 1.2 if codec.startswith("vae") else 2}
        for ax, column in zip(axes, ("accuracy", "psnr_db")):
            ax.plot(rows["bytes_per_image"], rows[column], label=codec, **style)
    for ax, label in zip(axes, ("judge's accuracy on the decoded test images", "PSNR (dB)")):
        ax.set_xscale("log")
        ax.set_xlabel("bytes per image (whole files, headers included)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylim(0.6, 1.0)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Lossy codecs on the 10,000 MNIST test digits")
    fig.tight_layout()
    save_figure(fig, path)

"""The latent-space explorer: a folder of static files that opens from disk (`file://`, no server, no
network) and runs the model's decoder in the page.

The decoder travels as a small program — its layers in order (linear, relu, conv_transpose, and the
reshapes between them) with their float32 weights — that `page/explorer.js` runs in plain
JavaScript. That covers every decoder of the model family (vaepipe.vae.model: mlp and conv, any prior, the
conditional mlp); a layer of another kind is refused by name. Everything the page needs is in classic
scripts that each set one global, because a page opened from `file://` may not fetch files beside it:
numeric arrays as base64 of their little-endian bytes, the test images as one PNG sprite in a data: URL
(an image from a data: URL leaves the canvas readable, one from a file would not).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from vaepipe.core.errors import ArtifactError
from vaepipe.core.paths import IMAGE_SIDE
from vaepipe.vae.model import VAE

PAGE_ASSETS = Path(__file__).with_name("page")
STATIC_FILES = ("explorer.js", "explorer.css")
IMAGES_SCRIPT = "test_images.js"
SPRITE_COLUMNS = 100
SLIDER_RANGE = 3.0  # each slider spans this many standard deviations of the codes along its direction


@dataclass(frozen=True)
class ExplorerPage:
    """One page of the folder: a model, the posterior means of the test images under it, and their 2-D map."""

    file: str  # e.g. index.html; the model's data goes to the same name with .js
    title: str
    model: VAE
    model_sha256: str
    codes: torch.Tensor  # [N, latent_dim] posterior means of the test images (given their labels, if conditional)
    facts: tuple[tuple[str, str], ...]  # shown in the header after the model's summary, e.g. ("test NLL", "90.02 nats")
    map_points: np.ndarray | None = None  # [N, 2]; None: the codes' first two principal components
    map_method: str = "the codes' first two principal components"


def model_summary(model: VAE) -> str:
    """E.g. `mlp 512-256, N(0, I) prior` or `conv 32-64, mog prior of 500 components, conditional on the label`."""
    c = model.config
    prior = "N(0, I) prior" if c.prior == "normal" else f"{c.prior} prior of {c.prior_components} components"
    return f"{c.arch} {'-'.join(map(str, c.hidden))}, {prior}" + (", conditional on the label" if c.classes else "")


def _b64(array: np.ndarray | torch.Tensor, dtype: str) -> str:
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def _plain_square(layer: nn.ConvTranspose2d) -> bool:
    """A transposed convolution the page runs: square kernel, stride and padding; no groups, dilation or extra padding."""
    square = all(len(set(pair)) == 1 for pair in (layer.kernel_size, layer.stride, layer.padding))
    return square and layer.groups == 1 and layer.dilation == (1, 1) and layer.output_padding == (0, 0)


def decoder_program(model: VAE) -> tuple[list[dict], np.ndarray]:
    """The decoder's layers as the page runs them, and all their weights in one float32 array.

    Input: z, with the one-hot label appended for a conditional model; output: Bernoulli logits, one per
    pixel (the page applies the sigmoid). Each layer records where its weights start in the array.
    """
    layers: list[dict] = []
    weights: list[np.ndarray] = []

    def take(*tensors: torch.Tensor) -> int:
        """Append the tensors' values to the weights; where the first one starts."""
        start = sum(map(len, weights))
        weights.extend(t.detach().cpu().float().reshape(-1).numpy() for t in tensors)
        return start

    shape: tuple[int, ...] = (model.config.latent_dim + model.config.classes,)
    for layer in model.decoder:
        if isinstance(layer, nn.Linear):
            layers.append({"op": "linear", "in": layer.in_features, "out": layer.out_features,
                           "offset": take(layer.weight, layer.bias)})
            shape = (layer.out_features,)
        elif isinstance(layer, nn.ReLU):
            layers.append({"op": "relu"})
        elif isinstance(layer, nn.Unflatten):
            shape = tuple(layer.unflattened_size)
        elif isinstance(layer, nn.Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, nn.ConvTranspose2d) and _plain_square(layer):
            channels, side, _ = shape
            kernel, stride, padding = layer.kernel_size[0], layer.stride[0], layer.padding[0]
            out_side = (side - 1) * stride - 2 * padding + kernel
            layers.append({"op": "conv_transpose", "in": channels, "out": layer.out_channels, "side": side,
                           "out_side": out_side, "kernel": kernel, "stride": stride, "padding": padding,
                           "offset": take(layer.weight, layer.bias)})
            shape = (layer.out_channels, out_side, out_side)
        else:
            raise ArtifactError(f"the explorer cannot run a decoder layer {layer!r}: it runs linear, ReLU and "
                                "square transposed-convolution layers")
    if shape != (IMAGE_SIDE * IMAGE_SIDE,):
        raise ArtifactError(f"the explorer needs a decoder of {IMAGE_SIDE}x{IMAGE_SIDE} images; this one gives {shape}")
    return layers, np.concatenate(weights)


def principal_axes(codes: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The codes' mean, their first `n` principal directions (orthonormal rows, each signed so that its largest
    component is positive) and the codes' standard deviation along each: exact SVD in float64."""
    x = codes.double().numpy()
    mean = x.mean(0)
    _, singular, directions = np.linalg.svd(x - mean, full_matrices=False)
    directions = directions[:n]
    directions *= np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(1)])[:, None]
    return mean, directions, singular[:n] / math.sqrt(max(len(x) - 1, 1))


def image_sprite(images: torch.Tensor) -> bytes:
    """Grey images in [0, 1], [N, 28, 28] or [N, 784], as one PNG, SPRITE_COLUMNS images a row (image i at row
    i // SPRITE_COLUMNS, column i % SPRITE_COLUMNS)."""
    pixels = (images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE) * 255).round().to(torch.uint8).numpy()
    rows = -(-len(pixels) // SPRITE_COLUMNS)
    padded = np.zeros((rows * SPRITE_COLUMNS, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    padded[: len(pixels)] = pixels
    sheet = padded.reshape(rows, SPRITE_COLUMNS, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 1, 3)
    out = io.BytesIO()
    Image.fromarray(sheet.reshape(rows * IMAGE_SIDE, SPRITE_COLUMNS * IMAGE_SIDE), mode="L").save(
        out, format="PNG", compress_level=9)
    return out.getvalue()


def _script(global_name: str, data: dict) -> bytes:
    """A classic script that sets window.<global_name> to `data` (a page from file:// can load it; fetch it cannot)."""
    return f"window.{global_name} = {json.dumps(data, sort_keys=True, separators=(',', ':'))};\n".encode()


def _model_data(page: ExplorerPage, pages: list[ExplorerPage], class_names: tuple[str, ...], directions: int,
                frames: int) -> dict:
    config = page.model.config
    program, weights = decoder_program(page.model)
    mean, axes, scales = principal_axes(page.codes, config.latent_dim)
    map_points = page.map_points
    if map_points is None:
        map_points = (page.codes.double().numpy() - mean) @ axes[:2].T
        map_points = np.pad(map_points, ((0, 0), (0, 2 - map_points.shape[1])))  # a 1-D latent: a line
    axes, scales = axes[:directions], scales[:directions]  # the sliders'
    return {
        "title": page.title, "sha256": page.model_sha256,
        "facts": [["model", model_summary(page.model)], ["latent size", str(config.latent_dim)],
                  *map(list, page.facts)],
        "latentDim": config.latent_dim, "classes": config.classes, "classNames": list(class_names),
        "program": program, "weights": _b64(weights, "float32"),
        "codes": _b64(page.codes, "float32"), "map": _b64(map_points, "float32"), "mapMethod": page.map_method,
        "mean": _b64(mean, "float32"), "axes": _b64(axes, "float32"), "scales": _b64(scales, "float32"),
        "sliderRange": SLIDER_RANGE, "frames": frames,
        "pages": [[other.file, other.title] for other in pages],
    }


def explorer_files(pages: list[ExplorerPage], images: torch.Tensor, labels: torch.Tensor,
                   class_names: tuple[str, ...], directions: int, frames: int) -> dict[str, bytes]:
    """Every file of the explorer folder, by name: a page (HTML + its model's script) per entry of `pages`, the
    test images and labels they share, the page's code and style. The same inputs give the same bytes."""
    files = {name: (PAGE_ASSETS / name).read_bytes() for name in STATIC_FILES}
    files[IMAGES_SCRIPT] = _script("EXPLORER_IMAGES", {
        "count": len(images), "columns": SPRITE_COLUMNS, "labels": _b64(labels, "uint8"),
        "sprite": "data:image/png;base64," + base64.b64encode(image_sprite(images)).decode()})
    template = (PAGE_ASSETS / "page.html").read_text()
    for page in pages:
        if len(page.codes) != len(images) or (page.map_points is not None and len(page.map_points) != len(images)):
            raise ValueError(f"{page.file}: codes and map points must be one per test image")
        model_script = Path(page.file).with_suffix(".js").name
        files[model_script] = _script("EXPLORER_MODEL", _model_data(page, pages, class_names, directions, frames))
        files[page.file] = template.replace("{{title}}", html.escape(page.title)).replace(
            "{{model_script}}", model_script).encode()
    return files

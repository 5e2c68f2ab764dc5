"""MNIST-C corruptions (Mu & Gilmer 2019, https://github.com/google-research/mnist-c), re-written for batches.

Each corruption maps grey images [N, 28, 28] in [0, 1] to corrupted images of the same shape in [0, 1],
at the one severity MNIST-C's published dataset uses (the default argument of each of its functions), so
the difficulty of the task is MNIST-C's, not ours. Random choices (noise, a rotation's direction, where
a line runs) are drawn per image from the numpy Generator passed in (fog's fractals from a torch Generator
seeded by it): same seed, same images.

Thirteen of MNIST-C's fifteen types are here. Left out: motion_blur (ImageMagick's motion-blur kernel,
called through Wand) and canny_edges (scikit-image's Canny detector), which would need those libraries.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from vaepipe.core.paths import IMAGE_SIDE

# MNIST-C's affine maps keep this point fixed: the centre of the 28 x 28 grid, in pixel coordinates.
CENTRE = (IMAGE_SIDE - 1) / 2


def _gaussian(x: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """skimage.filters.gaussian as MNIST-C called it (edges: nearest, truncated at 4 sigma); sigma per (row, column)."""
    return ndimage.gaussian_filter(x, sigma=(0, *sigma), mode="nearest", truncate=4.0)


def shot_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise at 3 photons for a white pixel (MNIST-C severity 5)."""
    photons = 3
    return np.clip(rng.poisson(x * photons) / photons, 0, 1)


def impulse_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on 17 % of the pixels, half each (severity 4)."""
    amount = 0.17
    flipped = rng.random(x.shape) <= amount
    salted = rng.random(x.shape) <= 0.5
    return np.where(flipped, salted.astype(x.dtype), x)


def glass_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, swap neighbouring pixels at random (2 sweeps), blur again (severity 1: sigma 0.7, reach 1).

    MNIST-C passes a 2-D image with `multichannel=True`, so its blur runs along the rows' axis only; kept.
    """
    sigma, reach, sweeps = (0.7, 0), 1, 2
    out = (_gaussian(x, sigma) * 255).astype(np.uint8)  # MNIST-C's np.uint8 truncation, kept
    n = len(out)
    for _ in range(sweeps):
        for h in range(IMAGE_SIDE - reach, reach, -1):
            for w in range(IMAGE_SIDE - reach, reach, -1):
                swap = np.flatnonzero(rng.random(n) < 0.5)
                dx, dy = rng.integers(-reach, reach, size=(2, n))
                if len(swap) == 0:
                    continue
                h2, w2 = h + dy[swap], w + dx[swap]
                here = out[swap, h, w].copy()
                out[swap, h, w] = out[swap, h2, w2]
                out[swap, h2, w2] = here
    return np.clip(_gaussian(out / 255, sigma), 0, 1)


def _warp(x: np.ndarray, linear: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Bilinear resampling, zeros outside (skimage's `warp` with order 1): the output pixel p reads the input at
    linear @ (p - centre) + centre + shift, in (column, row) coordinates; one 2 x 2 map and shift per image."""
    theta = np.concatenate([linear, shift[:, :, None] / CENTRE], axis=2)
    images = torch.from_numpy(x).unsqueeze(1)
    grid = F.affine_grid(torch.from_numpy(theta).to(images.dtype), list(images.shape), align_corners=True)
    return np.clip(F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
                   .squeeze(1).numpy(), 0, 1)


def _random_signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def shear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shear by 0.4 rad, direction at random (severity 2); skimage's matrix [[1, -sin s], [0, cos s]]."""
    s = 0.4 * _random_signs(rng, (len(x),))
    linear = np.zeros((len(x), 2, 2))
    linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 1] = 1, -np.sin(s), np.cos(s)
    return _warp(x, linear, np.zeros((len(x), 2)))


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate by 0.4 rad (23 degrees) about the centre, direction at random (severity 2)."""
    r = 0.4 * _random_signs(rng, (len(x),))
    cos, sin = np.cos(r), np.sin(r)
    linear = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
    return _warp(x, linear, np.zeros((len(x), 2)))


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shrink to 0.7 of the size about the centre (severity 3; the output reads the input at 1/0.7 the distance)."""
    linear = np.broadcast_to(np.eye(2) / 0.7, (len(x), 2, 2)).copy()
    return _warp(x, linear, np.zeros((len(x), 2)))


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift by 3 pixels along each axis, each direction at random (severity 3)."""
    shift = 3 * _random_signs(rng, (len(x), 2))
    return _warp(x, np.broadcast_to(np.eye(2), (len(x), 2, 2)).copy(), shift)


def brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on HSV value (severity 5); for grey pixels that is the grey level itself, clipped at white."""
    return np.clip(x + 0.5, 0, 1)


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert the 7 leftmost and 7 rightmost columns."""
    out = x.copy()
    out[:, :, :7] = 1 - out[:, :, :7]
    out[:, :, 21:] = 1 - out[:, :, 21:]
    return out


def spatter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey mud blots where smoothed Gaussian noise runs high (severity 4)."""
    loc, spread, sigma, cut, mask_sigma = 0.65, 0.3, 1.0, 0.65, 1.5
    liquid = _gaussian(rng.normal(loc, spread, size=x.shape), (sigma, sigma))
    mask = _gaussian((liquid > cut).astype(np.float64), (mask_sigma, mask_sigma))
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1)


def _plasma_fractals(n: int, gen: torch.Generator, decay: float, size: int = 256) -> torch.Tensor:
    """n independent plasma fractals (diamond-square), MNIST-C's fog texture, each scaled to [0, 1]: [n, size, size].

    Each level sets the centres of the squares, then the edge midpoints, to the mean of their four
    neighbours (wrapping around) plus uniform noise of amplitude wibble^2 (MNIST-C's wibble * U(-wibble, wibble));
    wibble shrinks by `decay` a level. In float32 torch, on every core: 7-11 s for a 12,000-image set here,
    against 22 s for the same arithmetic in numpy on one.
    """
    maps = torch.zeros(n, size, size)
    step, wibble = size, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        uniform = torch.rand(total.shape, generator=gen)  # U(0, 1), made U(-1, 1) below
        return total.mul_(0.25).add_(uniform.mul_(2 * wibble ** 2)).sub_(wibble ** 2)

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        squares = corners + corners.roll(-1, 1)
        maps[:, half::step, half::step] = wibbled_mean(squares.add_(squares.roll(-1, 2)))
        centres = maps[:, half::step, half::step]
        maps[:, ::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        maps[:, half::step, ::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= decay
    low, high = (extreme(maps.view(n, -1), 1).view(n, 1, 1) for extreme in (torch.amin, torch.amax))
    return (maps - low) / (high - low)


def fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plasma-fractal haze of strength 3 over the image, then rescaled to the image's old peak (severity 5).
    The fractal is drawn 256 x 256, as MNIST-C draws it, and its top-left 28 x 28 corner used."""
    strength, decay, chunk = 3.0, 1.4, 32  # 32 maps at a time (8 MiB) ran fastest, in cache
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 63)))
    haze = torch.cat([_plasma_fractals(min(chunk, len(x) - start), gen, decay)[:, :IMAGE_SIDE, :IMAGE_SIDE]
                      for start in range(0, len(x), chunk)]).numpy()
    peak = x.max(axis=(1, 2), keepdims=True)
    return np.clip((x + strength * haze) * peak / (peak + strength), 0, 1)


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """MNIST-C's anti-aliased line from (column c0, row r0) to (c1, r1): intensity log(1 - d/2.3) + 1 at
    distance d from it (clipped to [0, 1]), blank outside columns floor(c0) .. ceil(c1) - 1."""
    if c1 == c0:
        return np.zeros((IMAGE_SIDE, IMAGE_SIDE))
    cols, rows = np.meshgrid(np.arange(IMAGE_SIDE, dtype=np.float64), np.arange(IMAGE_SIDE, dtype=np.float64), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    width = 2.3
    dist = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, width - 1e-10)
    line = np.clip(np.log(1 - dist / width) + 1, 0, 1)
    line[:, :int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)):] = 0
    return line


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A line across the image between two random rows, every other pair of columns blanked."""
    out = np.empty_like(x)
    gaps = (np.arange(IMAGE_SIDE) // 2) % 2 == 0
    for i, (r0, r1) in enumerate(rng.integers(0, IMAGE_SIDE - 1, size=(len(x), 2))):
        line = _line(0, r0, IMAGE_SIDE - 1, r1)
        line[:, gaps] = 0
        out[i] = np.clip(x[i] + line, 0, 1)
    return out


def _zigzag_vertices(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-C's zigzag: teeth 2 px long and 2 px high along the segment from (2, r0) to (25, r1)."""
    tooth, height, c0, c1 = 2.0, 2.0, 2, 25
    theta = np.arctan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / np.cos(theta)
    vertices = [(0.0, 0.0)]
    for i in range(int((length - tooth) // (2 * tooth)) + 1):
        vertices.append(((2 * i + 1) * tooth, (-1) ** i * height))
    whole_teeth = 2 * tooth * (length // (2 * tooth))
    if length != whole_teeth:  # MNIST-C's closing vertex, odd formula kept
        vertices.append((length, vertices[-1][1] / (2 * (length - whole_teeth))))
    cos, sin = np.cos(theta), np.sin(theta)
    along, across = np.array(vertices).T
    return cos * along - sin * across + c0, sin * along + cos * across + r0


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag line across the image from a random row, tilted by up to 5 rows."""
    out = np.empty_like(x)
    starts = rng.integers(0, IMAGE_SIDE - 1, size=len(x))
    tilts = rng.integers(-5, 5, size=len(x))
    for i, (r0, tilt) in enumerate(zip(starts, tilts)):
        cols, rows = _zigzag_vertices(int(r0), int(r0 + tilt))
        image = x[i].astype(np.float64)
        for j in range(1, len(cols)):
            image = np.clip(image + _line(cols[j - 1], rows[j - 1], cols[j], rows[j]), 0, 1)
        out[i] = image
    return out


CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    f.__name__: f for f in (shot_noise, impulse_noise, glass_blur, shear, scale, rotate, brightness, translate,
                            stripe, fog, spatter, dotted_line, zigzag)
}


def corrupt(images: torch.Tensor, name: str, seed: int) -> torch.Tensor:
    """Flat grey images [N, 784] in [0, 1] → their `name` corruption, as uint8 like MNIST-C's files.

    The generator is seeded by `seed` and the corruption's name, so adding a type changes no other.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    x = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).numpy().astype(np.float64)
    corrupted = CORRUPTIONS[name](x, rng)
    return torch.from_numpy(np.round(corrupted * 255).astype(np.uint8)).reshape(len(images), -1)

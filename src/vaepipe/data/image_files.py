"""Image arrays in users' files: .npy and IDX files read as stored, binary images taken out of them, and
the same array put back together (dtype, shape, the value of a lit pixel) so a lossless round trip gives
the user's file back byte for byte.

A *layout* (a JSON-able dict) is what it takes to rebuild the array from flat binary images [N, 784]:
the file format ("npy" or "idx"), numpy's dtype string, the shape, the value of a lit pixel, and the
threshold the images were binarised at (None if they were binary already).

The lossy codec's images are grey: `grey_images` takes them from an array (or a folder of PNGs) and its layout
(format, dtype, shape, the scale of a full pixel) writes the decoded ones back in the same form.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaepipe.core.artifacts import replace_dir
from vaepipe.core.errors import DataError, InputError
from vaepipe.core.paths import IMAGE_PIXELS, IMAGE_SIDE
from vaepipe.data.datasets import IDX_IMAGES_MAGIC, read_idx

FORMATS = ("npy", "idx")
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
GREY_SCALE = 255  # integer grey levels run 0..255 as in MNIST


def read_array(path: Path) -> tuple[np.ndarray, str] | None:
    """The array in a .npy file or an IDX image file, as stored, and its format; None for other files."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False), "npy"
        except ValueError as exc:
            raise InputError(f"{path}: not a plain .npy array ({exc})") from None
    if int.from_bytes(magic, "big") == IDX_IMAGES_MAGIC:
        try:
            return read_idx(path, IDX_IMAGES_MAGIC).numpy(), "idx"
        except DataError as exc:
            raise InputError(str(exc)) from None
    return None


def flat_images(path: Path, array: np.ndarray) -> np.ndarray:
    """[28, 28], [N, 28, 28] or [N, 784] as [N, 784]; an InputError for any other shape."""
    if array.shape[-2:] == (IMAGE_SIDE, IMAGE_SIDE):
        array = array.reshape(-1, IMAGE_PIXELS)
    if array.ndim == 1 and len(array) == IMAGE_PIXELS:
        array = array.reshape(1, IMAGE_PIXELS)
    if array.ndim != 2 or array.shape[1] != IMAGE_PIXELS or len(array) == 0:
        raise InputError(f"{path}: array of shape {array.shape}; expected [28, 28], [N, 28, 28] or [N, 784]")
    return array


def _lit_value(array: np.ndarray) -> int | float | None:
    """The value of a lit pixel if the array holds only 0 and that value (1, or 255 for integers); else None."""
    values = np.unique(array)
    for one in ([1] if array.dtype.kind in "bf" else [1, GREY_SCALE]):
        if np.isin(values, [0, one]).all():
            return float(one) if array.dtype.kind == "f" else one
    return None


def binary_images(path: Path, array: np.ndarray, file_format: str,
                  binarize_at: float | None = None) -> tuple[torch.Tensor, dict]:
    """Flat binary images [N, 784] (uint8 0/1) from a user's array and the layout that rebuilds it.

    A binary array (0 and 1; or 0 and 255 for integers) is taken as it is. A grey one is refused unless
    `binarize_at` is given: then a pixel is lit above that fraction of full scale (255 for integers, 1 for
    floats), which loses the grey levels; the layout records the threshold."""
    if array.dtype.kind not in NUMERIC_KINDS:
        raise InputError(f"{path}: pixels of type {array.dtype}; expected booleans, integers or floats")
    images = flat_images(path, array)
    if array.dtype.kind == "f" and not np.isfinite(images).all():
        raise InputError(f"{path}: pixels include NaN or infinity")
    one = _lit_value(images)
    if one is None and binarize_at is None:
        values = np.unique(images)
        raise InputError(f"{path}: pixels are not binary ({len(values)} distinct values from {values[0]:g} to "
                         f"{values[-1]:g}); pass --binarize 0.5 to threshold grey images (lossy)")
    threshold_used = None
    if one is None:
        scale = 1.0 if array.dtype.kind == "f" else GREY_SCALE
        if images.min() < 0 or images.max() > scale:
            raise InputError(f"{path}: grey pixels must lie in [0, {scale:g}] (got {images.min():g} to {images.max():g})")
        images, one, threshold_used = images > binarize_at * scale, scale, binarize_at
    layout = {"format": file_format, "dtype": array.dtype.str, "shape": list(array.shape), "one": one,
              "binarized_at": threshold_used}
    return torch.from_numpy(np.ascontiguousarray(images != 0, dtype=np.uint8)), layout


def check_layout(layout: object, n_images: int, source: str) -> None:
    """A DataError naming `source` unless `layout` is one binary_images could have made for n_images."""
    try:
        dtype, shape = np.dtype(layout["dtype"]), layout["shape"]
        valid = (layout["format"] in FORMATS and dtype.kind in NUMERIC_KINDS and isinstance(shape, list)
                 and all(isinstance(side, int) and side > 0 for side in shape)
                 and int(np.prod(shape)) == n_images * IMAGE_PIXELS
                 and isinstance(layout["one"], (int, float)) and layout["one"] > 0
                 and (layout["format"] == "npy" or (dtype == np.uint8 and len(shape) == 3)))
    except (TypeError, KeyError, ValueError):
        valid = False
    if not valid:
        raise DataError(f"{source}: the header's array layout is invalid ({layout!r})")


def array_from_images(images: torch.Tensor, layout: dict) -> np.ndarray:
    """The user's array back from flat binary images [N, 784] and the layout binary_images returned."""
    lit = images.numpy().astype(bool)
    return np.where(lit, layout["one"], 0).astype(np.dtype(layout["dtype"])).reshape(layout["shape"])


def array_file_bytes(array: np.ndarray, file_format: str) -> bytes:
    """The bytes of a .npy file (numpy's format) or an IDX image file (big-endian header, then uint8 pixels)."""
    if file_format == "idx":
        header = [IDX_IMAGES_MAGIC, *array.shape]
        return b"".join(value.to_bytes(4, "big") for value in header) + array.astype(np.uint8).tobytes()
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# Grey images, for the lossy codec: any grey levels in, the decoder's grey levels out, in the user's layout.
PNG_FOLDER = "png"


def read_png_folder(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The *.png files of a folder, by name: 8-bit grey pixels [N, 28, 28] (colour is converted to its luminance)
    and the file names."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise InputError(f"{folder}: a folder with no .png files")
    pictures = []
    for path in paths:
        try:
            with Image.open(path) as picture:
                if picture.size != (IMAGE_SIDE, IMAGE_SIDE):
                    raise InputError(f"{path}: a {picture.size[0]}x{picture.size[1]} image; expected 28x28")
                pictures.append(np.asarray(picture.convert("L")))
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{path}: not a readable PNG image ({exc})") from None
    return np.stack(pictures), [path.name for path in paths]


def grey_images(path: Path, array: np.ndarray, file_format: str) -> tuple[torch.Tensor, dict]:
    """Flat grey images [N, 784] in [0, 1] (float32) from a user's array, and the layout that writes decoded ones
    back like it: integers are grey levels 0..255, floats (and booleans) lie in [0, 1]. Boolean arrays come back
    as float32, since decoded pixels are grey."""
    if array.dtype.kind not in NUMERIC_KINDS:
        raise InputError(f"{path}: pixels of type {array.dtype}; expected booleans, integers or floats")
    images = flat_images(path, array)
    scale = GREY_SCALE if array.dtype.kind in "iu" else 1.0
    if array.dtype.kind == "f" and not np.isfinite(images).all():
        raise InputError(f"{path}: pixels include NaN or infinity")
    if images.min() < 0 or images.max() > scale:
        raise InputError(f"{path}: grey pixels must lie in [0, {scale:g}] (got {images.min():g} to {images.max():g})")
    dtype = np.dtype(np.float32) if array.dtype.kind == "b" else array.dtype
    layout = {"format": file_format, "dtype": dtype.str, "shape": list(array.shape), "scale": scale}
    return torch.from_numpy(images.astype(np.float32) / scale), layout


def check_grey_layout(layout: object, n_images: int, source: str) -> None:
    """A DataError naming `source` unless `layout` is one grey_images (and, for a folder, its file names) could
    have made for n_images."""
    try:
        dtype, shape, names = np.dtype(layout["dtype"]), layout["shape"], layout.get("names")
        valid = (layout["format"] in (*FORMATS, PNG_FOLDER) and dtype.kind in NUMERIC_KINDS and isinstance(shape, list)
                 and all(isinstance(side, int) and side > 0 for side in shape)
                 and int(np.prod(shape)) == n_images * IMAGE_PIXELS and layout["scale"] in (1.0, GREY_SCALE)
                 and (layout["format"] != PNG_FOLDER or (
                     isinstance(names, list) and len(names) == n_images
                     and all(isinstance(n, str) and n.endswith(".png") and Path(n).name == n for n in names))))
    except (TypeError, KeyError, ValueError, AttributeError):
        valid = False
    if not valid:
        raise DataError(f"{source}: the header's array layout is invalid")


def array_from_grey(images: torch.Tensor, layout: dict) -> np.ndarray:
    """Decoded grey images [N, 784] in [0, 1] as the user's array: grey levels rounded for integer types."""
    values = images.double().numpy() * layout["scale"]
    dtype = np.dtype(layout["dtype"])
    if dtype.kind in "iu":
        values = np.rint(values)
    return values.astype(dtype).reshape(layout["shape"])


def write_png_folder(folder: Path, pictures: np.ndarray, names: list[str]) -> None:
    """8-bit grey PNGs [N, 28, 28] as the named files of `folder`, all at once: a failure leaves no folder."""
    scratch = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        scratch.mkdir(parents=True)
        for picture, name in zip(pictures, names):
            Image.fromarray(picture.astype(np.uint8), mode="L").save(scratch / name, format="PNG")
        replace_dir(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

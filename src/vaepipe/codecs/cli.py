"""`vaepipe-compress` and `vaepipe-decompress`: 28 x 28 images with the trained VAE, losslessly (binary images,
bits-back coding) or, with --step, lossily (grey images, a few bytes each).

    vaepipe-compress digits.npy               # writes digits.npy.vbb
    vaepipe-decompress digits.npy.vbb         # writes digits.npy again, byte for byte
    vaepipe-compress t10k-images-idx3-ubyte --binarize 0.5 -o test.vbb   # grey images: lossy, and says so
    vaepipe-compress t10k-images-idx3-ubyte --step 0.75     # lossy: writes t10k-images-idx3-ubyte.vlc
    vaepipe-compress scans/ --step 1                        # a folder of 28x28 PNGs: writes scans.vlc
    vaepipe-decompress scans.vlc -o decoded/                # the decoded digits, as PNGs of the same names

Images: .npy arrays of shape [28, 28], [N, 28, 28] or [N, 784], IDX image files like MNIST's, or (lossy only) a
folder of 28 x 28 PNG files. Lossless: pixels are 0 and 1 (any numeric type), or 0 and 255 (integers), and
decompressing gives back the same array: type, shape and values. Grey images are refused unless --binarize T is
given: then a pixel is lit above T x full scale (255, or 1 for floats), and decompressing gives those binary
images, not the grey ones.

Lossy (--step): grey levels 0..255 (integers) or 0..1 (floats); each image's latent code is quantised with the
step (larger: fewer bytes, coarser digits; 0.75 keeps 97 % of the default model's test digits readable at 6
bytes each) and decompressing gives the decoder's grey images in the input's form: the same array type and shape
(booleans come back as float32), or PNGs of the same names.

A compressed file records the sha256 of the model it was made with, the coder's settings and a checksum
of everything: decompressing with another model, or a truncated or altered file, is refused with one line.
Nothing is overwritten unless --force is given, and a failed run leaves no file behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vaepipe.codecs import lossy
from vaepipe.codecs.bitsback import MAX_BATCH, decode_file, encode_file
from vaepipe.codecs.container import file_mode, unpack
from vaepipe.core import paths
from vaepipe.core.artifacts import file_sha256, write_bytes
from vaepipe.core.cli import run_stage
from vaepipe.core.errors import InputError
from vaepipe.core.params import MAX_LATENT_PRECISION
from vaepipe.data.image_files import (PNG_FOLDER, array_file_bytes, array_from_grey, array_from_images, binary_images,
                                      check_grey_layout, check_layout, grey_images, read_array, read_png_folder,
                                      write_png_folder)
from vaepipe.vae.model import load_model

SUFFIX = ".vbb"
LOSSY_SUFFIX = ".vlc"


def _bounded(kind, low, high):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in [{low}, {high}]")
        return value
    return parse


def _parser(prog: str, input_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help=input_help)
    parser.add_argument("-o", "--output", type=Path, help="the file to write (default: see above)")
    parser.add_argument("--model", default=paths.VAE, help="the trained VAE (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    return parser


def _load_model(path: str) -> tuple[torch.nn.Module, str]:
    # The coder runs on the CPU whatever the machine has: both ends must compute the same probabilities.
    return load_model(path, torch.device("cpu")), file_sha256(path)


def _write(output: Path, data: bytes, force: bool) -> None:
    if output.exists() and not force:
        raise InputError(f"{output} exists; pass --force to overwrite it")
    write_bytes(output, data)


def compress(argv: list[str] | None = None) -> None:
    parser = _parser("vaepipe-compress", ".npy or IDX file of 28x28 images (binary; grey with --step), or, with "
                     "--step, a folder of 28x28 PNGs")
    parser.add_argument("--binarize", type=_bounded(float, 0.0, 1.0), metavar="T",
                        help="threshold grey images at T x full scale (lossy; binary images are kept as they are)")
    parser.add_argument("--precision", type=_bounded(int, 1, MAX_LATENT_PRECISION), default=8,
                        help="2**precision bins a latent (default: %(default)s)")
    parser.add_argument("--batch-size", type=_bounded(int, 1, MAX_BATCH), default=100,
                        help="images a network call; the decoder uses the same (default: %(default)s)")
    parser.add_argument("--step", type=_bounded(float, lossy.MIN_STEP, lossy.MAX_STEP),
                        help="lossy: quantise the latent codes with this step (e.g. 0.75; larger, fewer bytes)")
    parser.add_argument("--entropy-model", choices=lossy.ENTROPY_MODELS, default="auto",
                        help="lossy: code under the prior, Gaussians fitted to these images, or the smaller (auto)")
    args = parser.parse_args(argv)
    if args.step is not None:
        compress_lossy(args)
        return
    if args.input.is_dir():
        raise InputError(f"{args.input}: a folder; lossless compression takes a .npy or IDX file (pass --step for "
                         "lossy compression of a folder of PNGs)")
    stored = read_array(args.input)
    if stored is None:
        raise InputError(f"{args.input}: not a .npy file nor an IDX image file")
    images, layout = binary_images(args.input, *stored, binarize_at=args.binarize)
    if layout["binarized_at"] is not None:
        print(f"{args.input}: grey images binarised at {args.binarize:g} x {layout['one']:g} (lossy: decompressing "
              "gives these binary images, not the grey ones)")
    model, model_sha256 = _load_model(args.model)
    data = encode_file(images, model, model_sha256, args.precision, args.batch_size, {"array": layout})
    output = args.output or args.input.with_name(args.input.name + SUFFIX)
    _write(output, data, args.force)
    initial_bits = unpack(data, str(output))[0]["initial_bits"]
    print(f"{args.input}: {len(images)} images -> {output}, {len(data):,} bytes: {8 * len(data) / images.numel():.4f} "
          f"bits/pixel, {(8 * len(data) - initial_bits) / images.numel():.4f} net of the {initial_bits // 8:,} "
          "bytes the coder starts from")


def compress_lossy(args: argparse.Namespace) -> None:
    if args.binarize is not None:
        raise InputError("--binarize is for lossless compression; --step codes grey images as they are")
    if args.input.is_dir():
        pictures, names = read_png_folder(args.input)
        images, layout = grey_images(args.input, pictures, PNG_FOLDER)
        layout["names"] = names
    else:
        stored = read_array(args.input)
        if stored is None:
            raise InputError(f"{args.input}: not a .npy file, an IDX image file nor a folder of PNGs")
        images, layout = grey_images(args.input, *stored)
    model, model_sha256 = _load_model(args.model)
    data, _ = lossy.encode_file(images, model, model_sha256, args.step, {"array": layout},
                                            args.entropy_model)
    output = args.output or args.input.with_name(args.input.name + LOSSY_SUFFIX)
    _write(output, data, args.force)
    header, words = unpack(data, str(output))
    print(f"{args.input}: {len(images)} images -> {output}, {len(data):,} bytes: {len(data) / len(images):.2f} "
          f"bytes/image ({4 * len(words) / len(images):.2f} of codes), step {args.step:g}, "
          f"{'fitted Gaussians' if header['entropy_model'] else 'the prior'} as the entropy model")


def decompress(argv: list[str] | None = None) -> None:
    parser = _parser("vaepipe-decompress", f"a file vaepipe-compress wrote (the output drops its {SUFFIX})")
    args = parser.parse_args(argv)
    if args.output is None and args.input.suffix not in (SUFFIX, LOSSY_SUFFIX):
        raise InputError(f"{args.input} does not end in {SUFFIX} or {LOSSY_SUFFIX}; name the output with -o")
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise InputError(f"{args.input}: cannot be read ({exc.strerror})") from None
    model, model_sha256 = _load_model(args.model)
    output = args.output or args.input.with_suffix("")
    if file_mode(unpack(data, str(args.input))[0]) == lossy.MODE:
        decompress_lossy(data, args, model, model_sha256, output)
        return
    header, images = decode_file(data, str(args.input), model, args.model, model_sha256)
    layout = header.get("array")
    check_layout(layout, len(images), str(args.input))
    _write(output, array_file_bytes(array_from_images(images, layout), layout["format"]), args.force)
    print(f"{args.input}: {len(images)} images -> {output}")


def decompress_lossy(data: bytes, args: argparse.Namespace, model, model_sha256: str, output: Path) -> None:
    header, _, images = lossy.decode_file(data, str(args.input), model, args.model, model_sha256)
    layout = header.get("array")
    check_grey_layout(layout, len(images), str(args.input))
    array = array_from_grey(images, layout)
    if layout["format"] == PNG_FOLDER:
        if output.exists() and not args.force:
            raise InputError(f"{output} exists; pass --force to overwrite it")
        write_png_folder(output, array.reshape(-1, 28, 28), layout["names"])
    else:
        _write(output, array_file_bytes(array, layout["format"]), args.force)
    print(f"{args.input}: {len(images)} images (lossy, step {header['step']:g}) -> {output}")


def compress_entry_point() -> None:
    run_stage(compress)


def decompress_entry_point() -> None:
    run_stage(decompress)

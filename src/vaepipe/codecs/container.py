"""The file format both codecs write: MAGIC, the header's length and JSON header (format version, mode, the model's
sha256, the coder's settings, the image count and shape), the ANS coder's 32-bit words (little-endian), and the
sha256 of all of that, so a truncated or altered file, or one made with another model, is refused before anything
is decoded. `mode` says which codec wrote it: lossless (vaepipe.codecs.bitsback) or lossy (vaepipe.codecs.lossy).
"""

from __future__ import annotations

import hashlib
import json
import struct

import constriction
import numpy as np

from vaepipe.core.errors import DataError
from vaepipe.core.paths import IMAGE_SIDE

LOSSLESS, LOSSY = "lossless", "lossy"
MAGIC = b"VAEBBANS"
FORMAT_VERSION = 1
DIGEST_BYTES = 32  # sha256
WORD_BITS = 32
# constriction is a compiled extension whose submodules are attributes, not importable modules.
AnsCoder = constriction.stream.stack.AnsCoder


def pack(words: np.ndarray, header: dict) -> bytes:
    """A compressed file: MAGIC, header length and JSON header, the words (little-endian), the sha256."""
    head = json.dumps({"format_version": FORMAT_VERSION, **header}, sort_keys=True).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + words.astype("<u4").tobytes()
    return body + hashlib.sha256(body).digest()


def unpack(data: bytes, source: str) -> tuple[dict, np.ndarray]:
    """The header and words of a file `pack` wrote; a one-line DataError naming `source` otherwise."""
    if not data.startswith(MAGIC):
        raise DataError(f"{source}: not a vaepipe compressed file (no {MAGIC.decode()} header)")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if len(data) < len(MAGIC) + 4 + DIGEST_BYTES or hashlib.sha256(body).digest() != digest:
        raise DataError(f"{source}: checksum mismatch: the file is truncated or corrupted")
    (head_length,) = struct.unpack_from("<I", body, len(MAGIC))
    head_end = len(MAGIC) + 4 + head_length
    try:  # the checksum matched, so this is a file someone made on purpose: still check every field
        header = json.loads(body[len(MAGIC) + 4:head_end])
        if not isinstance(header, dict) or head_end > len(body) or (len(body) - head_end) % 4:
            raise ValueError("misplaced header")
    except ValueError:
        raise DataError(f"{source}: the header is not readable JSON followed by 32-bit words") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{source}: format version {header.get('format_version')} is not {FORMAT_VERSION}; "
                        "use the vaepipe version that wrote it")
    return header, np.frombuffer(body[head_end:], dtype="<u4").astype(np.uint32)


def check_common_header(header: dict, source: str) -> None:
    """A DataError naming the first field of those every mode has that a decoder cannot trust (a crafted file
    can carry any JSON)."""
    count = header.get("n_images")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 2 ** 31:
        raise DataError(f"{source}: header field `n_images` is {count!r}; expected an integer in [1, {2 ** 31}]")
    if not isinstance(header.get("model_sha256"), str):
        raise DataError(f"{source}: header field `model_sha256` is missing")
    if header.get("image_shape") != [IMAGE_SIDE, IMAGE_SIDE]:
        raise DataError(f"{source}: images of shape {header.get('image_shape')}; this version codes 28x28 images")


def check_model(header: dict, source: str, model_path: str, model_sha256: str) -> None:
    """A DataError unless the file was made with the model at model_path."""
    if header["model_sha256"] != model_sha256:
        raise DataError(f"{source} was compressed with another model (sha256 {header['model_sha256'][:12]}...) than "
                        f"{model_path} (sha256 {model_sha256[:12]}...); decompress it with the model that compressed it")


def file_mode(header: dict) -> str:
    """LOSSLESS or LOSSY; files from before lossy coding carry no mode."""
    return header.get("mode", LOSSLESS)

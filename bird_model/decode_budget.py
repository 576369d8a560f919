"""The decode budget: how much time and memory a stranger's file may cost, judged from its header.

Uploads come from strangers, so every decode is bounded before it starts: the pixel count
(:data:`MAX_PIXELS`, lower for WebP: :func:`bird_model.formats.pixel_limit`), a JPEG's scans and
the blocks they walk (decoding time grows with scans, not with file size), a PNG's or BMP's
pixel data, and the files Pillow would decode in Python (RLE-compressed BMPs). Each limit says
what it admits and what it cost to measure; docs/security.md ("The decode budget") explains
them and benchmarks/decode_budget.py searches for the worst file each one lets through.
:mod:`bird_model.images` calls :func:`check_budget` on every file it opens.
"""

from __future__ import annotations

import io
from typing import BinaryIO, ClassVar

from PIL import Image

from bird_model.formats import pixel_limit
from bird_model.refusal import Refusal

MIN_SIDE = 8
"""Smallest usable width or height: below this a photo holds no recognisable bird."""

MAX_PIXELS = 50_000_000
"""Refuse larger images from their header alone, before any pixel is decoded.

50 megapixels admits every camera photo we expect (a 6000x4000 JPEG is 24 MP) and refuses
decompression bombs such as a 450 KB PNG claiming 12000x12000 pixels.
"""

MAX_JPEG_SCANS = 100
"""Refuse JPEGs with more scans, counted from the markers before decoding.

Real encoders write 1 (baseline) to about 12 (libjpeg's and mozjpeg's progressive scripts)
scans. A quick first bound; :data:`MAX_JPEG_BLOCK_SCANS` is the one that bounds the time.
"""

MAX_JPEG_BLOCK_SCANS = 11_000_000
"""Refuse JPEGs whose decoding work, in 8x8 blocks walked, is larger, counted from the headers.

Each progressive scan walks every block of the components it names again, however few bytes
it holds, so time grows with blocks x scans, not with file size: a 0.19 MB 7063x7063 gray
JPEG whose scans each walk all 780,000 blocks took 5.6 CPU seconds at 100 scans (about
70 ns a block; docs/security.md, "The decode budget", measured by
benchmarks/decode_budget.py). The compressed data of a multi-scan JPEG costs more on top
(:data:`JPEG_BYTE_BLOCKS`). 11 million blocks are about 0.85 s; libjpeg's own progressive
script walks 6.2 million for a 49 MP 4:2:0 photo, 3.1 million for 24 MP.
"""

JPEG_BYTE_BLOCKS = 0.7
"""What a byte of a multi-scan JPEG's compressed data costs, in blocks walked.

A 26 MB progressive 7063x7063 JPEG of fine noise took 1.68 CPU seconds, 1.25 s more than its
6.2 million blocks walked: about 48 ns a byte, 0.7 of a block. (Baseline data costs a third
of that: a 35 MB baseline JPEG took 0.55 s, so it needs no limit beyond the pixel count.)
So a 24 MP progressive photo may hold up to 11 MB, a 49 MP 4:2:0 one 6.8 MB.
"""

MAX_JPEG_BUFFERED_BLOCKS = 1_250_000
"""Refuse multi-scan (progressive) JPEGs with more 8x8 blocks than this, from the header.

A JPEG of several scans is held whole as DCT coefficients (128 bytes a block) until its last
scan, whatever the output scale: a 7063x7063 progressive CMYK took 386 MB. 1.25 million
blocks (160 MB) admit 50 MP gray or 4:2:0 colour (how cameras and phones save), 39 MP 4:2:2,
26 MP 4:4:4 and 19 MP CMYK. Baseline (one-scan) JPEGs decode a row of blocks at a time.
"""

MAX_PIXEL_DATA_BYTES = 75_000_000
"""Refuse PNGs and BMPs with more pixel data than this (width x height x bits per pixel), from the header.

Inflating and unfiltering a PNG cost about 9 ns a byte of pixel data however well it
compresses: a 0.2 MB 7063x7063 8-bit RGBA PNG of Paeth-filtered rows took 1.8 CPU seconds,
the same in 16-bit RGBA 3.3 s, a 50 MP 16-bit gray one (100 MB of data) 1.1 s. An
uncompressed BMP is its pixel data, but Pillow holds 24-, 32- and 16-bit ones at 4 bytes a
pixel: 208 MB for 49 MP. 75 MB admits 18 MP RGBA, 25 MP RGB (a 6000x4000 camera photo),
37 MP 16-bit and 50 MP 8-bit gray or palette images.
"""

_SOS = b"\xff\xda"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""Samples per pixel of each PNG colour type: gray, RGB, palette, gray + alpha, RGBA."""
_BMP_COMPRESSIONS = {1: "run-length compression (RLE8)", 2: "run-length compression (RLE4)"}


class OverBudget(Refusal):
    """A file whose decoding would cost more than the budget, or that is too small to be a photo;
    the message says why in a user's words (:class:`bird_model.images.ImageError` carries it on)."""

    REFUSALS: ClassVar[dict[str, str]] = {
        "pixel_data": ("The {format} is too large to decode quickly: {width}x{height} pixels of {bits} bits is {megabytes} "
                       "MB of pixel data, over the limit of {limit} MB; save it smaller, or as JPEG."),
        "slow_compression": "The {format} file uses {compression}, which takes too long to decode; save it as PNG or JPEG.",
        "progressive_memory": ("The progressive JPEG is too large to decode: {width}x{height} pixels with full-resolution "
                               "colour needs too much memory; save it again as a normal (baseline) JPEG, or smaller."),
        "progressive_slow": ("The JPEG's {scans} progressive scans of {width}x{height} pixels would take too long to "
                             "decode; save it again as a normal (baseline) JPEG, or smaller."),
        "too_many_scans": ("The JPEG has more than {scans} progressive scans, which would take too long to decode; save "
                           "it again as a normal JPEG."),
        "too_many_pixels": "The image is too large: {width}x{height} pixels is over the limit of {megapixels} megapixels.",
        "too_many_pixels_for": ("The image is too large: {width}x{height} pixels is over the limit of {megapixels} "
                                "megapixels for {format}."),
        "too_small": "The image is too small: {width}x{height} pixels; at least {side}x{side} is needed.",
    }


def check_budget(image: Image.Image) -> None:
    """Every check that keeps a decode within its time and memory budget, all from the header;
    raises :class:`OverBudget` with a message fit for the user."""
    check_dimensions(image)
    _check_decoder(image)
    _check_scans(image)
    _check_pixel_data(image)


def _check_pixel_data(image: Image.Image) -> None:
    """Refuse a PNG or BMP with more than :data:`MAX_PIXEL_DATA_BYTES` of pixel data, from its header."""
    bits = _stored_bits(image)
    stored = image.width * image.height * bits // 8
    if stored > MAX_PIXEL_DATA_BYTES:
        raise OverBudget("pixel_data", format=image.format, width=image.width, height=image.height, bits=bits,
                         megabytes=stored // 1_000_000, limit=MAX_PIXEL_DATA_BYTES // 1_000_000)


def _stored_bits(image: Image.Image) -> int:
    """Bits per pixel as a PNG (IHDR: bit depth x samples) or BMP (info header) stores them; 0 for other formats."""
    if image.format not in ("PNG", "BMP") or image.fp is None:
        return 0
    position = image.fp.tell()
    if image.format == "PNG":
        image.fp.seek(24)  # signature, IHDR length and type, width, height
        depth, color_type = image.fp.read(2)
        bits = depth * _PNG_CHANNELS.get(color_type, 4)
    else:
        image.fp.seek(14)
        header_size = int.from_bytes(image.fp.read(4), "little")
        image.fp.seek(24 if header_size == 12 else 28)  # OS/2's 12-byte header has 16-bit width and height
        bits = int.from_bytes(image.fp.read(2), "little")
    image.fp.seek(position)
    return bits


def _check_decoder(image: Image.Image) -> None:
    """Refuse a file whose pixels Pillow would decode in Python rather than C, from its header.

    Pillow's decoders are C code except the few registered from Python (``Image.DECODERS``);
    of our formats only BMP's run-length compressions (RLE8, RLE4, the header's compression
    field 1 and 2) use one, which fills rows a byte at a time: a 1,112-byte RLE8 BMP cost
    7.25 CPU seconds. No camera or browser writes RLE BMPs.
    """
    if any(tile.codec_name in Image.DECODERS for tile in image.tile):
        compression = _BMP_COMPRESSIONS.get(image.info.get("compression"), "this compression")
        raise OverBudget("slow_compression", format=image.format, compression=compression)


def _check_scans(image: Image.Image) -> None:
    """Refuse a JPEG whose scans would take too long or too much memory, before decoding it.

    Reads each scan's header (which components it walks) from the markers: more than
    :data:`MAX_JPEG_SCANS` scans, more than :data:`MAX_JPEG_BUFFERED_BLOCKS` blocks held by a
    multi-scan file, or more work than :data:`MAX_JPEG_BLOCK_SCANS` blocks walked (a
    multi-scan file's compressed bytes counted at :data:`JPEG_BYTE_BLOCKS`) are refused.
    """
    if image.format not in ("JPEG", "MPO") or image.fp is None:
        return
    position = image.fp.tell()
    try:
        scans, scan_bytes = _scan_components(image.fp)
    finally:
        image.fp.seek(position)
    blocks = _component_blocks(image)
    walked = sum(blocks.get(component, 0) for scan in scans for component in scan)
    if len(scans) > 1:
        walked += int(JPEG_BYTE_BLOCKS * scan_bytes)
    if len(scans) > 1 and sum(blocks.values()) > MAX_JPEG_BUFFERED_BLOCKS:
        raise OverBudget("progressive_memory", width=image.width, height=image.height)
    if walked > MAX_JPEG_BLOCK_SCANS:
        raise OverBudget("progressive_slow", scans=len(scans), width=image.width, height=image.height)


def _scan_components(fp: BinaryIO) -> tuple[list[bytes], int]:
    """The component ids of each scan of the file (at most :data:`MAX_JPEG_SCANS` + 1 of them),
    and the bytes from the first scan to the end of the file.

    The header segments are skipped by their lengths up to the first scan, as libjpeg does, so
    an EXIF thumbnail's scans are not counted. From there on every 0xFF 0xDA is a scan: inside
    compressed data a 0xFF byte is always followed by 0x00 or a restart marker. A second
    picture of an MPO file adds its scans, which only errs towards refusing.
    """
    starts: list[int] = []
    offset, previous = _first_scan(fp), b""
    fp.seek(offset)
    while chunk := fp.read(1 << 20):
        block = previous + chunk
        starts += [offset - len(previous) + at for at in _find_all(block, _SOS)]
        offset += len(chunk)
        previous = chunk[-1:]
        if len(starts) > MAX_JPEG_SCANS:
            raise OverBudget("too_many_scans", scans=MAX_JPEG_SCANS)
    scans = []
    for start in starts:
        fp.seek(start + 4)
        count = fp.read(1)
        scans.append(fp.read(2 * count[0])[::2] if count else b"")
    return scans, offset - (starts[0] if starts else offset)


def _first_scan(fp: BinaryIO) -> int:
    """Where the first start-of-scan marker is, walking the header segments; 0 if they do not add up."""
    fp.seek(2)
    while True:
        marker = fp.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return 0
        if marker[1] == 0xFF:  # fill byte before a marker
            fp.seek(-1, io.SEEK_CUR)
        elif marker[1] == _SOS[1]:
            return fp.tell() - 2
        else:
            length = int.from_bytes(fp.read(2), "big")
            if length < 2:
                return 0
            fp.seek(length - 2, io.SEEK_CUR)


def _find_all(data: bytes, pattern: bytes) -> list[int]:
    found, at = [], data.find(pattern)
    while at >= 0:
        found.append(at)
        at = data.find(pattern, at + 1)
    return found


def _component_blocks(image: Image.Image) -> dict[int, int]:
    """8x8 blocks of each component by id, from the frame header's sampling factors."""
    layers = getattr(image, "layer", [])
    if not layers:
        return {}
    h_max, v_max = max(layer[1] for layer in layers), max(layer[2] for layer in layers)
    return {
        component: -(-image.width * h // (8 * h_max)) * -(-image.height * v // (8 * v_max))
        for component, h, v, _ in layers
    }


def check_dimensions(image: Image.Image) -> None:
    """The pixel count within :data:`MAX_PIXELS` (or the format's own limit), each side at least :data:`MIN_SIDE`."""
    width, height = image.size
    limit, whose = pixel_limit(image.format, MAX_PIXELS)
    if width * height > limit:
        raise OverBudget("too_many_pixels_for" if whose else "too_many_pixels", width=width, height=height,
                         megapixels=limit // 1_000_000, format=whose)
    if min(width, height) < MIN_SIDE:
        raise OverBudget("too_small", width=width, height=height, side=MIN_SIDE)

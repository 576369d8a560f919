"""Turning a photo file into the RGB pixels the model sees, within a fixed budget.

Training and serving both call :func:`load_rgb`, so a photo is decoded, rotated, flattened
and resized the same way in both; the model itself scales those 0-255 pixels to
MobileNetV2's [-1, 1] range. Everything that can go wrong with a file surfaces as an
:class:`ImageError` whose message is fit to show a user as is.

Uploads come from strangers, so decoding is bounded before it starts: only the decoders in
:mod:`bird_model.formats` are used, the pixel count is checked from the header, a JPEG's
scan count is checked from its markers (decoding time grows with scans, not with file
size), files that Pillow would decode in Python (RLE-compressed BMPs) are refused, and
every image is shrunk toward the model's size right after decoding, before any conversion
copies it. docs/security.md ("The decode budget") explains each limit; benchmarks/decode_budget.py measures them.
"""

from __future__ import annotations

import ctypes
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bird_model.formats import FORMAT_NAMES, PILLOW_FORMATS, extension_for, pixel_limit

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

STORED_MAX_SIDE = 2048
"""Longest side of a stored visitor's photo (:func:`clean_copy`): 9x the model's 224 pixels,
room for a larger model later, and at most about 1 MB as JPEG."""

STORED_JPEG_QUALITY = 92

BACKGROUND = (255, 255, 255)
"""Transparent areas are composited onto white, in training and serving alike."""

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
_BAND_BLOCKS = 32
_SOS = b"\xff\xda"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""Samples per pixel of each PNG colour type: gray, RGB, palette, gray + alpha, RGBA."""
_BMP_COMPRESSIONS = {1: "run-length compression (RLE8)", 2: "run-length compression (RLE4)"}


class ImageError(ValueError):
    """A file that cannot be used as a photo; the message says why, in a user's words."""


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding pixels."""

    width: int
    height: int
    format: str
    """Pillow's format id (one of :data:`bird_model.formats.PILLOW_FORMATS`, or ``MPO``)."""


def load_rgb(source: str | Path | BinaryIO | bytes, size: int) -> np.ndarray:
    """Decode ``source`` into a ``(size, size, 3)`` uint8 RGB array.

    Applies EXIF orientation, composites transparency onto :data:`BACKGROUND`, maps
    palette, grayscale, CMYK and 16-bit images to 8-bit RGB (16-bit values are scaled,
    not clipped) and takes the first frame of animations. Large JPEGs are decoded at a
    reduced scale that still covers ``size``; other formats are shrunk right after decoding.
    """
    with _open(source) as image:
        _check_budget(image)
        try:
            image.draft("RGB", (size, size))
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(_shrunk(image, size)))
        except MemoryError as error:
            raise ImageError("The image is too large to process.") from error
        except Exception as error:  # noqa: BLE001 - a decoder fed a stranger's bytes may raise any type
            raise ImageError(f"The image data is corrupt or truncated ({_first_line(error)}).") from error
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def clean_copy(source: str | Path | BinaryIO | bytes) -> tuple[bytes, str]:
    """A visitor's photo re-encoded from its pixels alone, and the file ending to store it under.

    Whatever a file carries besides pixels (EXIF with GPS position and camera serial, XMP,
    ICC profile, comments) is left behind: the copy is built from the decoded pixels, with
    the EXIF orientation applied and transparency flattened onto :data:`BACKGROUND`, exactly
    as :func:`load_rgb` sees them, so training on the copy sees what the model saw. It is at
    most :data:`STORED_MAX_SIDE` pixels on its longer side. JPEG sources are stored as JPEG
    (quality :data:`STORED_JPEG_QUALITY`: already lossy, a PNG would be several times larger
    for no gain); every other format as PNG, so lossless sources stay lossless. The same
    budget checks as :func:`load_rgb` run first; failures raise :class:`ImageError`.
    """
    rgb, jpeg = _upright(source, STORED_MAX_SIDE)
    pixels_only = Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB")
    encoded = io.BytesIO()
    if jpeg:
        pixels_only.save(encoded, "JPEG", quality=STORED_JPEG_QUALITY)
    else:
        pixels_only.save(encoded, "PNG")
    return encoded.getvalue(), extension_for("JPEG" if jpeg else "PNG")


def load_view(source: str | Path | BinaryIO | bytes, side: int) -> np.ndarray:
    """The photo as a person sees it, at most ``side`` pixels on its longer side: its own shape,
    orientation applied, 8-bit RGB. For drawing on (the page's overlay), never for the model,
    which sees :func:`load_rgb`'s square. Raises :class:`ImageError` as :func:`load_rgb` does."""
    return np.asarray(_upright(source, side)[0], dtype=np.uint8)


def _upright(source: str | Path | BinaryIO | bytes, side: int) -> tuple[Image.Image, bool]:
    """Decoded within the budget, oriented, RGB, at most ``side`` on its longer side; and whether it was a JPEG."""
    with _open(source) as image:
        _check_budget(image)
        jpeg = image.format in ("JPEG", "MPO")
        try:
            image.draft("RGB", (side, side))
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(_shrunk(image, side // 2)))
        except MemoryError as error:
            raise ImageError("The image is too large to process.") from error
        except Exception as error:  # noqa: BLE001 - a decoder fed a stranger's bytes may raise any type
            raise ImageError(f"The image data is corrupt or truncated ({_first_line(error)}).") from error
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return rgb, jpeg


def _shrunk(image: Image.Image, size: int) -> Image.Image:
    """Shrink a large decoded image to about twice ``size`` before any conversion copies it.

    Rotation, transparency and colour conversion each copy the whole image, 16-bit scaling
    in floating point: one 7000x7000 16-bit gray PNG (98 KB) took a request to 1.3 GB
    before every mode was shrunk here first. Box averaging keeps the final bilinear
    resize's quality; palette indices cannot be averaged, so palette images are sampled
    (what Pillow's own resize does for them).
    """
    factor = min(image.size) // (2 * size)
    if factor < 2:
        return image
    if image.mode == "P":
        return image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
    return _reduce_in_bands(image, factor)


def _reduce_in_bands(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``, a band of rows at a time, with the same result.

    Pillow reduces an image with transparency by first copying all of it with premultiplied
    alpha (190 MB more for a 49 MP RGBA PNG); a band of :data:`_BAND_BLOCKS` output rows
    costs a few MB. Bands of 1-bit and 16-bit images become 8-bit gray and 32-bit integers,
    which Pillow can average.
    """
    rows = factor * _BAND_BLOCKS
    reduced: Image.Image | None = None
    for top in range(0, image.height, rows):
        band = _reducible(image.crop((0, top, image.width, min(top + rows, image.height)))).reduce(factor)
        if reduced is None:
            reduced = Image.new(band.mode, (-(-image.width // factor), -(-image.height // factor)))
        reduced.paste(band, (0, top // factor))
    assert reduced is not None  # an image has at least one row
    reduced.info = dict(image.info)  # the EXIF orientation, applied after shrinking
    return reduced


def _reducible(band: Image.Image) -> Image.Image:
    if band.mode == "1":
        return band.convert("L")
    if band.mode.startswith("I;16"):
        return band.convert("I")
    return band


def release_large_buffers_promptly() -> None:
    """Make glibc return every freed buffer over 1 MiB to the system at once (a server's start-up).

    A decoded photo needs tens to hundreds of MB for a moment. By default glibc keeps such
    freed blocks in per-thread arenas, so a server decoding in two threads grew to 2.2 GB
    under load (benchmarks/load.py, 49 MP PNGs among the photos); with this threshold it
    peaked under 1 GB. Same as ``MALLOC_MMAP_THRESHOLD_=1048576``; a no-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1 << 20)


def read_header(source: str | Path | BinaryIO | bytes) -> Header:
    """Size and format from the header, validated the same way :func:`load_rgb` does."""
    with _open(source) as image:
        _check_dimensions(image)
        return Header(image.width, image.height, image.format or "")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB with the conversions a person would expect."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_gray_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info or image.mode in ("PA", "LA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _high_depth_gray_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit (or 32-bit integer) grayscale to 8 bits; Pillow's own convert clips."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I") and values.max(initial=0) <= 65535 else values.max(initial=1)
    scaled = np.clip(np.rint(values * (255.0 / max(top, 1.0))), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled).convert("RGB")


def _open(source: str | Path | BinaryIO | bytes) -> Image.Image:
    """Open lazily (header only) with our decoders alone, one message per kind of failure."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if _is_empty(source):
        raise ImageError("The file is empty.")
    try:
        # Pillow warns above its own (larger) pixel cap and refuses far above it; our
        # stricter _check_dimensions then refuses from the header, with a steady message.
        return Image.open(source, formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageError(f"The image is too large to process safely ({error}).") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"The file is not an image in a supported format ({FORMAT_NAMES}).") from error
    except Exception as error:  # noqa: BLE001 - header parsers fed a stranger's bytes may raise any type
        raise ImageError(f"The image could not be read ({_first_line(error)}).") from error


def _check_budget(image: Image.Image) -> None:
    """Every check that keeps a decode within its time and memory budget, all from the header."""
    _check_dimensions(image)
    _check_decoder(image)
    _check_scans(image)
    _check_pixel_data(image)


def _check_pixel_data(image: Image.Image) -> None:
    """Refuse a PNG or BMP with more than :data:`MAX_PIXEL_DATA_BYTES` of pixel data, from its header."""
    bits = _stored_bits(image)
    stored = image.width * image.height * bits // 8
    if stored > MAX_PIXEL_DATA_BYTES:
        raise ImageError(
            f"The {image.format} is too large to decode quickly: {image.width}x{image.height} pixels of {bits} bits "
            f"is {stored // 1_000_000} MB of pixel data, over the limit of {MAX_PIXEL_DATA_BYTES // 1_000_000} MB; "
            "save it smaller, or as JPEG."
        )


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
        raise ImageError(
            f"The {image.format} file uses {compression}, which takes too long to decode; save it as PNG or JPEG."
        )


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
        raise ImageError(
            f"The progressive JPEG is too large to decode: {image.width}x{image.height} pixels with full-resolution "
            "colour needs too much memory; save it again as a normal (baseline) JPEG, or smaller."
        )
    if walked > MAX_JPEG_BLOCK_SCANS:
        raise ImageError(
            f"The JPEG's {len(scans)} progressive scans of {image.width}x{image.height} pixels would take too long "
            "to decode; save it again as a normal (baseline) JPEG, or smaller."
        )


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
            raise ImageError(
                f"The JPEG has more than {MAX_JPEG_SCANS} progressive scans, which would take too long to decode; "
                "save it again as a normal JPEG."
            )
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


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


def _is_empty(source: str | Path | BinaryIO) -> bool:
    if isinstance(source, (str, Path)):
        return Path(source).stat().st_size == 0
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty


def _check_dimensions(image: Image.Image) -> None:
    width, height = image.size
    limit, whose = pixel_limit(image.format, MAX_PIXELS)
    if width * height > limit:
        raise ImageError(
            f"The image is too large: {width}x{height} pixels is over the limit of "
            f"{limit // 1_000_000} megapixels{whose}."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"The image is too small: {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.")

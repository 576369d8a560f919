"""Turning a photo file into the RGB pixels the model sees, within a fixed budget.

Training and serving both call :func:`load_rgb`, so a photo is decoded, rotated, flattened
and resized the same way in both; the model itself scales those 0-255 pixels to
MobileNetV2's [-1, 1] range. Everything that can go wrong with a file surfaces as an
:class:`ImageError` whose message is fit to show a user as is.

Uploads come from strangers, so decoding is bounded before it starts: only the decoders in
:mod:`bird_model.formats` are used, every file passes :mod:`bird_model.decode_budget`'s checks
from its header, and every image is shrunk toward the model's size right after decoding,
before any conversion copies it.
"""

from __future__ import annotations

import ctypes
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bird_model.console import first_line
from bird_model.decode_budget import OverBudget, check_budget, check_dimensions
from bird_model.formats import FORMAT_NAMES, PILLOW_FORMATS, extension_for
from bird_model.refusal import Refusal

STORED_MAX_SIDE = 2048
"""Longest side of a stored visitor's photo (:func:`clean_copy`): 9x the model's 224 pixels,
room for a larger model later, and at most about 1 MB as JPEG."""

STORED_JPEG_QUALITY = 92

BACKGROUND = (255, 255, 255)
"""Transparent areas are composited onto white, in training and serving alike."""

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
_BAND_BLOCKS = 32


class ImageError(Refusal):
    """A file that cannot be used as a photo; the message says why, in a user's words."""

    REFUSALS: ClassVar[dict[str, str]] = {
        "empty": "The file is empty.",
        "not_image": "The file is not an image in a supported format ({formats}).",
        "unreadable": "The image could not be read ({detail}).",
        "too_large": "The image is too large to process.",
        "corrupt": "The image data is corrupt or truncated ({detail}).",
        **OverBudget.REFUSALS,
    }


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
        _within_budget(check_budget, image)
        try:
            image.draft("RGB", (size, size))
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(_shrunk(image, size)))
        except MemoryError as error:
            raise ImageError("too_large") from error
        except Exception as error:  # noqa: BLE001 - a decoder fed a stranger's bytes may raise any type
            raise ImageError("corrupt", detail=first_line(error)) from error
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
        _within_budget(check_budget, image)
        jpeg = image.format in ("JPEG", "MPO")
        try:
            image.draft("RGB", (side, side))
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(_shrunk(image, side // 2)))
        except MemoryError as error:
            raise ImageError("too_large") from error
        except Exception as error:  # noqa: BLE001 - a decoder fed a stranger's bytes may raise any type
            raise ImageError("corrupt", detail=first_line(error)) from error
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
        _within_budget(check_dimensions, image)
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
        raise ImageError("empty")
    try:
        # Pillow warns above its own (larger) pixel cap and refuses far above it; our
        # stricter check_dimensions then refuses from the header, with a steady message.
        return Image.open(source, formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageError("too_large") from error
    except UnidentifiedImageError as error:
        raise ImageError("not_image", formats=FORMAT_NAMES) from error
    except Exception as error:  # noqa: BLE001 - header parsers fed a stranger's bytes may raise any type
        raise ImageError("unreadable", detail=first_line(error)) from error


def _within_budget(check: Callable[[Image.Image], None], image: Image.Image) -> None:
    """Run a check of :mod:`bird_model.decode_budget`; its refusal becomes an :class:`ImageError`."""
    try:
        check(image)
    except OverBudget as error:
        raise ImageError(error.reason, **error.values) from None


def _is_empty(source: str | Path | BinaryIO) -> bool:
    if isinstance(source, (str, Path)):
        return Path(source).stat().st_size == 0
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty

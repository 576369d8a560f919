"""Turning a photo file into the RGB pixels the model sees.

Training and serving both call :func:`load_rgb`, so a photo is decoded, rotated, flattened
and resized the same way in both; the model itself scales those 0-255 pixels to
MobileNetV2's [-1, 1] range. Everything that can go wrong with a file surfaces as an
:class:`ImageError` whose message is fit to show a user as is.
"""

from __future__ import annotations

import ctypes
import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 8
"""Smallest usable width or height: below this a photo holds no recognisable bird."""

MAX_PIXELS = 50_000_000
"""Refuse larger images from their header alone, before any pixel is decoded.

50 megapixels admits every camera photo we expect (a 6000x4000 JPEG is 24 MP) and refuses
decompression bombs such as a 450 KB PNG claiming 12000x12000 pixels.
"""

BACKGROUND = (255, 255, 255)
"""Transparent areas are composited onto white, in training and serving alike."""


class ImageError(ValueError):
    """A file that cannot be used as a photo; the message says why, in a user's words."""


def load_rgb(source: str | Path | BinaryIO | bytes, size: int) -> np.ndarray:
    """Decode ``source`` into a ``(size, size, 3)`` uint8 RGB array.

    Applies EXIF orientation, composites transparency onto :data:`BACKGROUND`, maps
    palette, grayscale, CMYK and 16-bit images to 8-bit RGB (16-bit values are scaled,
    not clipped) and takes the first frame of animations. Large JPEGs are decoded at a
    reduced scale that still covers ``size``, which keeps memory flat for big photos.
    """
    with _open(source) as image:
        _check_dimensions(image)
        image.draft("RGB", (size, size))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageError(f"The image data is corrupt or truncated ({error}).") from error
        rgb = to_rgb(ImageOps.exif_transpose(_shrunk(image, size)))
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def _shrunk(image: Image.Image, size: int) -> Image.Image:
    """Box-reduce a large decoded image to about twice ``size`` before any conversion.

    Rotation, transparency and colour conversion each copy the whole image: on a 49 MP
    RGBA PNG that took one request to about 900 MB, and to under 400 MB once reduced
    first. Twice the target keeps the final bilinear resize's quality.
    """
    factor = min(image.size) // (2 * size)
    if factor < 2 or image.mode in ("P", "1"):  # palette indices cannot be averaged
        return image
    try:
        return image.reduce(factor)
    except ValueError:  # a mode Pillow cannot reduce (rare high-depth ones): convert whole
        return image


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


def read_dimensions(source: str | Path | BinaryIO | bytes) -> tuple[int, int]:
    """Width and height from the header, validated the same way :func:`load_rgb` does."""
    with _open(source) as image:
        _check_dimensions(image)
        return image.size


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB with the conversions a person would expect."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
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
    """Open lazily (header only), turning Pillow's many failure types into one message each."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if _is_empty(source):
        raise ImageError("The file is empty.")
    try:
        # Pillow warns above its own (larger) pixel cap and refuses far above it; our
        # stricter _check_dimensions then refuses from the header, with a steady message.
        return Image.open(source)
    except Image.DecompressionBombError as error:
        raise ImageError(f"The image is too large to process safely ({error}).") from error
    except UnidentifiedImageError as error:
        raise ImageError("The file is not an image in a supported format (JPEG, PNG, WebP, BMP, GIF).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"The image could not be read ({error}).") from error


def _is_empty(source: str | Path | BinaryIO) -> bool:
    if isinstance(source, (str, Path)):
        return Path(source).stat().st_size == 0
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty


def _check_dimensions(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is too large: {width}x{height} pixels is over the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"The image is too small: {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.")

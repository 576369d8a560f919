"""The image formats the product reads: one list for the decoder, dataset scans, messages and the README.

Only these decoders ever see an upload. Pillow can open many more (TIFF, AVIF, ICO, PCX, SGI,
TGA, EPS through Ghostscript, ...), and each is attack surface a stranger can reach from the
demo's page. Left out on purpose: TIFF (no camera or phone saves it, browsers cannot show it
in the upload preview, and libtiff's many codecs are a long CVE list) and AVIF (a corrupt file
raised ``RuntimeError`` inside Pillow's decoder, decoding AV1 costs far more CPU per pixel
than JPEG, and no photo of the reference or Kaggle datasets uses it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    name: str
    """As people write it, in messages and the README."""
    pillow: str
    """Pillow's format id, for ``Image.open(..., formats=...)``."""
    extensions: tuple[str, ...]
    """File name endings, lower case, the first one used when a file of this format is saved."""
    max_pixels: int | None = None
    """A lower pixel limit than ``bird_model.decode_budget.MAX_PIXELS``, for a decoder that needs more
    memory per pixel (docs/security.md, "The decode budget")."""


FORMATS: tuple[ImageFormat, ...] = (
    ImageFormat("JPEG", "JPEG", (".jpg", ".jpeg")),
    ImageFormat("PNG", "PNG", (".png",)),
    # Pillow decodes WebP through a full-size RGBA canvas and copies it: about 16 bytes per
    # pixel at the peak, 4x a PNG's, so 49 MP took one request to 784 MB and 16 MP to 257 MB
    # (benchmarks/decode_budget.py); 12 MP (4000x3000) stays within 200 MB.
    ImageFormat("WebP", "WEBP", (".webp",), max_pixels=12_000_000),
    ImageFormat("BMP", "BMP", (".bmp",)),
    ImageFormat("GIF", "GIF", (".gif",)),
)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(ext for fmt in FORMATS for ext in fmt.extensions)
PILLOW_FORMATS: tuple[str, ...] = tuple(fmt.pillow for fmt in FORMATS)
FORMAT_NAMES: str = ", ".join(fmt.name for fmt in FORMATS)
"""``JPEG, PNG, WebP, BMP, GIF``: the README says exactly this (a test checks)."""


def pixel_limit(pillow_format: str | None, default: int) -> tuple[int, str]:
    """The most pixels a file of this format may have, and the format's name where it has a limit of its own ("" else)."""
    listed = next((fmt for fmt in FORMATS if fmt.pillow == pillow_format and fmt.max_pixels), None)
    return (listed.max_pixels, listed.name) if listed and listed.max_pixels else (default, "")


def extension_for(pillow_format: str | None) -> str:
    """The file ending to store a decoded upload under; ``.bin`` for anything not on the list.

    Pillow names a JPEG with multi-picture data ``MPO``: it came through the JPEG decoder.
    """
    wanted = "JPEG" if pillow_format == "MPO" else pillow_format
    return next((fmt.extensions[0] for fmt in FORMATS if fmt.pillow == wanted), ".bin")

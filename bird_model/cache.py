"""The photo cache: each usable photo decoded once, at model size, into a file tf.data reads natively.

Decoding a JPEG and resizing it costs far more than reading 150 KB, and a dataset is checked
again on every run and every retraining, so the decoded pixels are kept on disk (docs/training.md,
"Training at scale"). An entry is named by what determines its pixels: the photo's SHA-256,
the image size and :data:`DECODER_VERSION`; the same photo in another folder or under another
name is the same entry. Its bytes are the raw ``(size, size, 3)`` uint8 RGB pixels followed by
their own SHA-256, so that ``tf.io.decode_raw`` reads the pixels with no Python per photo, and
the check can tell a whole entry from a corrupt or truncated one without decoding the photo.
Entries are written to a temporary file and renamed into place, so a killed run leaves either
a whole entry or none.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECODER_VERSION = 1
"""Raise this whenever :func:`bird_model.images.load_rgb` changes the pixels it returns: old entries go unread."""

DIGEST_BYTES = hashlib.sha256().digest_size


@dataclass(frozen=True)
class PhotoCache:
    """Decoded photos of one image size under ``root``."""

    root: Path
    image_size: int

    @property
    def pixel_bytes(self) -> int:
        return self.image_size * self.image_size * 3

    def entry(self, sha256: str) -> Path:
        """Where the photo with this content hash lives; two hex digits of fan-out keep folders small."""
        return self.root / sha256[:2] / f"{sha256}-{self.image_size}px-v{DECODER_VERSION}.rgb"

    def read(self, sha256: str) -> np.ndarray | None:
        """The cached pixels, or None when the entry is missing, truncated or corrupt (so it is rewritten)."""
        try:
            stored = self.entry(sha256).read_bytes()
        except OSError:
            return None
        pixels, digest = stored[: self.pixel_bytes], stored[self.pixel_bytes :]
        if len(pixels) != self.pixel_bytes or hashlib.sha256(pixels).digest() != digest:
            return None
        return np.frombuffer(pixels, dtype=np.uint8).reshape(self.image_size, self.image_size, 3)

    def write(self, sha256: str, pixels: np.ndarray) -> None:
        """Store ``pixels`` atomically: a temporary file in the same folder, renamed over the entry."""
        if pixels.shape != (self.image_size, self.image_size, 3) or pixels.dtype != np.uint8:
            expected = (self.image_size, self.image_size, 3)
            raise ValueError(f"expected uint8 pixels of shape {expected}, got {pixels.dtype} {pixels.shape}")
        raw = np.ascontiguousarray(pixels).tobytes()
        target = self.entry(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(raw + hashlib.sha256(raw).digest())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

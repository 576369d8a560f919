"""Small files built to cost a decoder much memory or time: shared by the load and decode benchmarks and the tests."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image


def striped(mode: str) -> Image.Image:
    """7000x7000 of alternating rows: 49 MP that compress to about 100 KB."""
    stripes = np.zeros((7000, 7000), dtype=np.uint16 if mode == "I;16" else np.uint8)
    stripes[::2] = 40000 if mode == "I;16" else 1
    image = Image.fromarray(stripes)
    if mode == "P":
        image = image.convert("P")
        image.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    return image


def many_scans(scans: int, side: int = 7000) -> bytes:
    """A valid progressive JPEG whose smallest scan repeats until it has ``scans`` scans.

    At the default 7000x7000 it is about 1.2 MB and took 35 s to decode in full before
    scans were counted.
    """
    encoded = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(encoded, "JPEG", progressive=True, quality=50)
    data = encoded.getvalue()
    end = data.rindex(b"\xff\xd9")
    starts = [match.start() for match in re.finditer(b"\xff\xda", data)]
    parts = [data[start:following] for start, following in zip(starts, [*starts[1:], end])]
    return data[:end] + min(parts[1:], key=len) * (scans - len(parts)) + data[end:]


def corrupt_avif() -> bytes:
    """An AVIF cut in half: a format we do not decode, in a form that has crashed decoders."""
    encoded = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(encoded, "AVIF")
    data = encoded.getvalue()
    return data[: len(data) // 2] + bytes(100)

"""Where the model looked: a class activation map drawn over the photo it came from."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

COLORMAP = "inferno"
"""Dark where the top class found nothing, bright yellow where it found most; it stays readable
in grey scale and for colour-blind visitors (matplotlib's perceptually uniform maps)."""
OPACITY = 0.5
"""Share of the heat map in the blend: enough to read the map, little enough to see the bird."""


@cache
def _palette() -> bytes:
    """The colour map as Pillow's 256-entry palette; matplotlib loads at the first overlay, not
    at the app's start (benchmarks/README.md, "Cold start")."""
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8).tobytes()


def draw_overlay(pixels: np.ndarray, activation: np.ndarray) -> Image.Image:
    """The ``(size, size, 3)`` uint8 photo the model saw, with its ``(h, w)`` activation map blended over it.

    Negative evidence is cut to zero and the rest scaled to its maximum, so the brightest part
    of every overlay is where the top class's evidence was strongest, however confident the
    model was. The map is upsampled bilinearly to the photo: each of its cells covers a block
    of the photo (32x32 pixels for MobileNetV2 at 224). Every step after the scaling runs in
    Pillow's C code on 8-bit images (numpy's per-pixel indexing and float blending took ten
    times as long), so drawing costs well under a millisecond.
    """
    positive = np.maximum(activation.astype(np.float32), 0.0)
    peak = float(positive.max())
    levels = np.round(positive * (255 / peak) if peak > 0 else positive).astype(np.uint8)
    height, width = pixels.shape[:2]
    heat = Image.fromarray(levels, mode="L").resize((width, height), Image.Resampling.BILINEAR)
    heat.putpalette(_palette())
    return Image.blend(Image.fromarray(pixels), heat.convert("RGB"), OPACITY)

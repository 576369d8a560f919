"""Decoding photos: every odd format becomes the right RGB pixels, every bad file a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bird_model.images import MAX_PIXELS, ImageError, load_rgb


def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    image.paste(1, (0, 0, 16, 32))
    image.info["transparency"] = 0
    pixels = load_rgb(saved(image, tmp_path / "p.png", transparency=0), 32)
    assert tuple(pixels[16, 4]) == (0, 0, 255)
    assert tuple(pixels[16, 28]) == (255, 255, 255)


def test_rgba_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (20, 20), (10, 200, 10, 0))
    assert tuple(load_rgb(saved(image, tmp_path / "a.png"), 20)[10, 10]) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.full((16, 16), 32768, dtype=np.uint16)
    path = saved(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I")
    assert tuple(load_rgb(path, 16)[0, 0]) == (128, 128, 128)


def test_grayscale_and_cmyk_become_rgb(tmp_path: Path) -> None:
    gray = load_rgb(saved(Image.new("L", (16, 16), 77), tmp_path / "g.png"), 16)
    assert tuple(gray[8, 8]) == (77, 77, 77)
    cmyk = load_rgb(saved(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=100), 16)
    red, green, blue = cmyk[8, 8].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = saved(image, tmp_path / "r.jpg", exif=exif, quality=100)
    pixels = load_rgb(path, 40)
    assert pixels[5, 20].mean() > 200 and pixels[35, 20].mean() < 50  # white half ends up on top


def test_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in [(255, 0, 0), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    red, green, _ = load_rgb(path, 16)[8, 8].astype(int)
    assert red > 200 and green < 50


def test_output_shape_and_type(tmp_path: Path) -> None:
    pixels = load_rgb(saved(Image.new("RGB", (300, 100), (1, 2, 3)), tmp_path / "w.webp"), 64)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8


def test_bytes_and_file_objects_match_paths(tmp_path: Path) -> None:
    path = saved(Image.new("RGB", (50, 50), (9, 99, 199)), tmp_path / "x.png")
    np.testing.assert_array_equal(load_rgb(path, 32), load_rgb(path.read_bytes(), 32))
    np.testing.assert_array_equal(load_rgb(path, 32), load_rgb(io.BytesIO(path.read_bytes()), 32))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not a photo", "not an image"),
        (None, "corrupt or truncated"),
    ],
)
def test_bad_files_have_specific_messages(tmp_path: Path, content: bytes | None, message: str) -> None:
    if content is None:
        whole = saved(Image.effect_noise((200, 200), 50).convert("RGB"), tmp_path / "full.jpg").read_bytes()
        content = whole[: len(whole) // 2]
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_rgb(path, 32)


def test_tiny_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="too small: 7x30"):
        load_rgb(saved(Image.new("RGB", (7, 30)), tmp_path / "t.png"), 32)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    path = saved(Image.new("L", (side, side)), tmp_path / "bomb.png", optimize=True)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        load_rgb(path, 32)


@pytest.mark.parametrize("format_", ["PNG", "JPEG"])
def test_large_photos_keep_their_orientation_when_reduced_early(format_: str) -> None:
    image = Image.new("RGB", (2000, 1000), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 1000, 1000))
    exif = Image.Exif()
    exif[0x0112] = 6
    encoded = io.BytesIO()
    image.save(encoded, format_, exif=exif)
    pixels = load_rgb(encoded.getvalue(), 64)
    assert pixels[5, 32].mean() > 200 and pixels[58, 32].mean() < 50

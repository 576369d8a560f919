"""Decoding photos: every odd format becomes the right RGB pixels, every bad file a clear error."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.decode_budget import bmp, repeated_scan, rle_bmp
from bird_model.formats import FORMAT_NAMES
from bird_model.decode_budget import MAX_JPEG_SCANS, MAX_PIXEL_DATA_BYTES, MAX_PIXELS
from bird_model.images import ImageError, load_rgb


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


# -- hostile files: the decode budget -------------------------------------------------------


def progressive_jpeg_with_scans(scans: int, side: int = 64) -> bytes:
    """A valid progressive JPEG whose smallest scan is repeated until it has ``scans`` scans."""
    encoded = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(encoded, "JPEG", progressive=True)
    data = encoded.getvalue()
    end = data.rindex(b"\xff\xd9")
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    parts = [data[start:following] for start, following in zip(starts, [*starts[1:], end])]
    smallest = min(parts[1:], key=len)
    return data[:end] + smallest * (scans - len(parts)) + data[end:]


def test_jpeg_scans_are_counted_before_decoding() -> None:
    assert load_rgb(progressive_jpeg_with_scans(MAX_JPEG_SCANS), 32).shape == (32, 32, 3)
    with pytest.raises(ImageError, match=f"more than {MAX_JPEG_SCANS} progressive scans"):
        load_rgb(progressive_jpeg_with_scans(MAX_JPEG_SCANS + 1), 32)


@pytest.mark.parametrize("format_", ["TIFF", "ICO", "PCX", "TGA", "SGI", "AVIF"])
def test_only_the_listed_formats_are_decoded(format_: str) -> None:
    encoded = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(encoded, format_)
    with pytest.raises(ImageError, match=rf"not an image in a supported format \({FORMAT_NAMES}\)"):
        load_rgb(encoded.getvalue(), 32)


def test_webp_has_its_own_lower_pixel_limit() -> None:
    """Pillow's WebP decoder needs about four times a PNG's memory per pixel."""
    encoded = io.BytesIO()
    Image.new("RGB", (4000, 3008), "green").save(encoded, "WEBP")
    with pytest.raises(ImageError, match="4000x3008 pixels is over the limit of 12 megapixels for WebP"):
        load_rgb(encoded.getvalue(), 32)
    encoded = io.BytesIO()
    Image.new("RGB", (4000, 3000), "green").save(encoded, "WEBP")
    assert load_rgb(encoded.getvalue(), 32).shape == (32, 32, 3)


def test_postscript_never_reaches_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"
    with pytest.raises(ImageError, match="not an image in a supported format"):
        load_rgb(eps, 32)


def test_the_readme_lists_the_formats_the_decoder_reads() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"Photos in {FORMAT_NAMES} are read" in readme


def huge(mode: str, side: int = 7000) -> Image.Image:
    """``side`` x ``side`` (7000: 49 MP, just under the limit) in ``mode``, striped so the decoded result is checkable."""
    stripes = np.zeros((side, side), dtype=np.uint16 if mode == "I;16" else np.uint8)
    stripes[::2] = 40000 if mode == "I;16" else 1
    if mode == "1":
        return Image.fromarray(stripes.astype(bool))
    image = Image.fromarray(stripes)
    if mode == "P":
        image = image.convert("P")
        image.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
        image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("mode", "side", "mean_rgb"),
    [("I;16", 6000, [77.8] * 3), ("P", 7000, [127.5, 127.5, 255]), ("1", 7000, [127.5] * 3)],
)
def test_huge_images_of_every_mode_decode_in_bounded_memory(
    tmp_path: Path, mode: str, side: int, mean_rgb: list[float]
) -> None:
    """Each mode is shrunk before any full-size conversion: tens of MB over the decoded file, not a GB.

    Stripes of alternating rows average out: 16-bit 40000 and 0 to 77.8; transparent (white)
    and blue palette rows to (127.5, 127.5, 255); 1-bit white and black to 127.5. 16-bit gray
    is as large as MAX_PIXEL_DATA_BYTES lets it be.
    """
    path = tmp_path / "huge.png"
    huge(mode, side).save(path, optimize=True)
    assert path.stat().st_size < 400_000, "a tiny file that decodes to 49 million pixels"
    # VmHWM, not ru_maxrss: that one carries this (large) process's peak into the child.
    probe = (
        "import re, sys; from pathlib import Path; from bird_model.images import load_rgb; "
        "pixels = load_rgb(sys.argv[1], 224); print(*pixels.reshape(-1, 3).mean(axis=0).round(1)); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) // 1024)"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120, check=True)
    means, peak_mb = result.stdout.splitlines()
    np.testing.assert_allclose([float(value) for value in means.split()], mean_rgb, atol=3)
    assert int(peak_mb) < 300, f"decoding took the process to {peak_mb} MB"


@pytest.mark.parametrize(("rle4", "name"), [(False, "RLE8"), (True, "RLE4")])
def test_run_length_bmps_are_refused_before_decoding(rle4: bool, name: str) -> None:
    """Pillow decodes RLE BMPs in Python, a byte at a time: this 2 KB file took 12 CPU seconds to decode."""
    bomb = rle_bmp(179_000, 270, rle4=rle4)
    assert len(bomb) < 2500
    with pytest.raises(ImageError, match=rf"run-length compression \({name}\), which takes too long to decode"):
        load_rgb(bomb, 32)


def test_pngs_with_too_much_pixel_data_are_refused_from_the_header() -> None:
    """Inflating and unfiltering cost time per byte of pixel data, however small the file: 7000x7000 16-bit gray
    (98 MB of data in a 0.1 MB file) is refused, 6000x6000 (72 MB) decodes (the test above)."""
    encoded = io.BytesIO()
    huge("I;16").save(encoded, "PNG", optimize=True)
    with pytest.raises(ImageError, match=rf"7000x7000 pixels of 16 bits is 98 MB of pixel data, over the limit of "
                                         rf"{MAX_PIXEL_DATA_BYTES // 1_000_000} MB"):
        load_rgb(encoded.getvalue(), 32)


def test_jpeg_scans_walking_too_many_blocks_are_refused_before_decoding() -> None:
    """Time grows with blocks x scans: 60 scans of a blank 4000x4000 gray JPEG (15 million blocks walked) are
    refused though under the scan count, the same file with libjpeg's own 6 scans decodes."""
    encoded = io.BytesIO()
    Image.new("L", (4000, 4000)).save(encoded, "JPEG", progressive=True)
    assert load_rgb(encoded.getvalue(), 32).shape == (32, 32, 3)
    hostile = repeated_scan(encoded.getvalue(), budget=15_000_000)
    assert hostile.count(b"\xff\xda") <= MAX_JPEG_SCANS
    with pytest.raises(ImageError, match="progressive scans of 4000x4000 pixels would take too long to decode"):
        load_rgb(hostile, 32)


def test_large_progressive_jpegs_with_full_resolution_colour_are_refused() -> None:
    """A progressive JPEG is held whole as coefficients: 5000x5000 CMYK would need 200 MB; baseline needs little."""
    image = Image.new("CMYK", (5000, 5000), (0, 255, 255, 0))
    baseline, progressive = io.BytesIO(), io.BytesIO()
    image.save(baseline, "JPEG")
    image.save(progressive, "JPEG", progressive=True)
    assert load_rgb(baseline.getvalue(), 32).shape == (32, 32, 3)
    with pytest.raises(ImageError, match="progressive JPEG is too large to decode: 5000x5000 pixels"):
        load_rgb(progressive.getvalue(), 32)


def test_bmps_with_too_much_pixel_data_are_refused_from_the_header() -> None:
    """Pillow holds a 24-bit BMP at 4 bytes a pixel: 7000x7000 would take 200 MB; 8-bit stays allowed."""
    with pytest.raises(ImageError, match="The BMP is too large to decode quickly: 7000x7000 pixels of 24 bits is 147 MB"):
        load_rgb(bmp(7000, 7000, 24), 32)
    assert load_rgb(bmp(7000, 7000, 8), 32).shape == (32, 32, 3)


def test_progressive_jpegs_with_too_much_compressed_data_are_refused() -> None:
    """A multi-scan JPEG's bytes cost three times a baseline one's: 20 MB of progressive noise is refused, the
    same pixels saved as a baseline JPEG decode."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4000, 5000, 3), dtype=np.uint8))
    baseline, progressive = io.BytesIO(), io.BytesIO()
    noise.save(baseline, "JPEG", quality=95)
    noise.save(progressive, "JPEG", quality=95, progressive=True)
    assert progressive.tell() > 15_000_000
    assert load_rgb(baseline.getvalue(), 32).shape == (32, 32, 3)
    with pytest.raises(ImageError, match="progressive scans of 5000x4000 pixels would take too long to decode"):
        load_rgb(progressive.getvalue(), 32)

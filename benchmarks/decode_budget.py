"""The decode budget: an adversarial search for the costliest file of each kind we accept.

    python benchmarks/decode_budget.py [--only TEXT]

Every accepted file must decode in at most :data:`CPU_BUDGET_S` CPU seconds and
:data:`MEMORY_BUDGET_MB` MB more than the interpreter needs before decoding. Each file is
built at the limits a stranger can reach (the pixel cap of its format and mode, the most
JPEG scans allowed; the 25 MB upload cap is marked where a file exceeds it, since training
folders have no such cap) and varies what makes decoders slow: JPEG scan count x components
(gray, YCbCr, CMYK, YCCK) x chroma subsampling x restart intervals x progressive, the scan
repeated being the one that covers the most blocks per byte; PNG colour type x bit depth x
Adam7 interlace x palette transparency, with Paeth-filtered rows that compress a thousandfold;
GIF and WebP animations and palettes; BMP at every bit depth and compression. Each is decoded
by ``bird_model.images.load_rgb`` in a fresh process, which reports its CPU seconds
(``getrusage`` around the call), wall seconds and peak RSS (VmHWM: ``ru_maxrss`` would carry
over the parent's high-water mark through fork and exec) minus its RSS just before the call.
Refused files are listed with the message and what refusing cost. The rows over budget, if
any, are listed at the end; the exit status is 1 if there are any.
"""

from __future__ import annotations

import argparse
import io
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import _corrupt_avif, _many_scans
from benchmarks.machine import describe_machine
from bird_model.formats import pixel_limit
from bird_model.decode_budget import (
    JPEG_BYTE_BLOCKS,
    MAX_JPEG_BLOCK_SCANS,
    MAX_JPEG_BUFFERED_BLOCKS,
    MAX_JPEG_SCANS,
    MAX_PIXEL_DATA_BYTES,
    MAX_PIXELS,
)
from bird_model.images import ImageError, load_rgb

CPU_BUDGET_S = 1.0
MEMORY_BUDGET_MB = 200
UPLOAD_CAP = 25 * 2**20
PROBE = (
    "import re, resource, sys, time; from pathlib import Path; from bird_model.images import ImageError, load_rgb\n"
    "def rss(field): return int(re.search(field + r':\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) / 1024\n"
    "data = Path(sys.argv[1]).read_bytes(); before = rss('VmRSS')\n"
    "cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
    "start, start_cpu = time.perf_counter(), cpu()\n"
    "try:\n    load_rgb(data, 224); outcome = 'decoded'\n"
    "except ImageError as error:\n    outcome = 'refused: ' + str(error)[:70]\n"
    "print(f'{cpu() - start_cpu:.2f}|{time.perf_counter() - start:.2f}|{rss(\"VmHWM\") - before:.0f}|{outcome}')"
)


def side(pillow_format: str) -> int:
    """The side of the largest square image of this format that the header checks let through."""
    limit, _ = pixel_limit(pillow_format, MAX_PIXELS)
    return int(limit**0.5) - 8


# -- JPEG --------------------------------------------------------------------------------------


def noise(mode: str, width: int, height: int | None = None, scale: int = 8) -> Image.Image:
    """Blocky noise: costly to decode like a photo, yet small enough to upload."""
    height = height or width
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (-(-height // scale), -(-width // scale), channels), dtype=np.uint8)
    image = Image.fromarray(small.squeeze(), "RGBA" if mode == "CMYK" else mode)
    if mode == "CMYK":
        image = Image.frombytes("CMYK", image.size, image.tobytes())
    return image.resize((width, height), Image.Resampling.NEAREST)


def encoded(image: Image.Image, format_: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    # libjpeg writes a progressive file in one go; Pillow's buffer, sized by pixels, is too small
    # for fine noise at high quality ("Suspension not allowed here"), so give it room for 4 bytes a pixel.
    before, ImageFile.MAXBLOCK = ImageFile.MAXBLOCK, max(ImageFile.MAXBLOCK, 4 * image.width * image.height)
    try:
        image.save(buffer, format_, **options)
    finally:
        ImageFile.MAXBLOCK = before
    return buffer.getvalue()


def jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan: from its SOS marker to the next scan or the end of image."""
    end = data.rindex(b"\xff\xd9")
    starts = [match.start() for match in re.finditer(b"\xff\xda", data)]
    return list(zip(starts, [*starts[1:], end]))


def scan_blocks(data: bytes, start: int) -> int:
    """How many 8x8 blocks the scan at ``start`` walks, from the SOF's sampling factors."""
    sof = re.search(b"\xff[\xc0\xc1\xc2]", data)
    assert sof is not None
    height, width, count = struct.unpack(">HHB", data[sof.start() + 5 : sof.start() + 10])
    factors = {data[at]: (data[at + 1] >> 4, data[at + 1] & 15) for at in range(sof.start() + 10, sof.start() + 10 + 3 * count, 3)}
    h_max, v_max = max(h for h, _ in factors.values()), max(v for _, v in factors.values())
    in_scan = data[start + 5 : start + 5 + 2 * data[start + 4] : 2]
    return sum(-(-width * factors[c][0] // (8 * h_max)) * -(-height * factors[c][1] // (8 * v_max)) for c in in_scan)


def repeated_scan(data: bytes, budget: int = MAX_JPEG_BLOCK_SCANS) -> bytes:
    """``data`` with its costliest scan per byte (most blocks walked per byte) repeated while the
    work (blocks walked, and bytes as ``JPEG_BYTE_BLOCKS``) stays within ``budget`` and the scans
    within ``MAX_JPEG_SCANS``.

    The first scan (DC, all components) sets up the image and is kept once; libjpeg accepts a
    repeated later scan with a warning and walks all its blocks again each time.
    """
    parts = jpeg_scans(data)
    start, end = max(parts[1:], key=lambda part: scan_blocks(data, part[0]) / (part[1] - part[0]))
    walked = sum(scan_blocks(data, part[0]) for part in parts) + JPEG_BYTE_BLOCKS * len(data)
    each = scan_blocks(data, start) + JPEG_BYTE_BLOCKS * (end - start)
    repeats = min(int((budget - walked) // each), MAX_JPEG_SCANS - len(parts))
    return data[: parts[-1][1]] + data[start:end] * max(repeats, 0) + data[parts[-1][1] :]


def as_ycck(data: bytes) -> bytes:
    """A CMYK JPEG relabelled YCCK (Adobe transform 2): the decoder converts YCC to CMYK as well."""
    adobe = data.index(b"Adobe")
    return data[: adobe + 11] + b"\x02" + data[adobe + 12 :]


def progressive_side(blocks_per_pixel: float) -> int:
    """The side of the largest square progressive JPEG the buffered-blocks limit lets through, in whole MCUs."""
    return min(side("JPEG"), int((MAX_JPEG_BUFFERED_BLOCKS / blocks_per_pixel) ** 0.5) // 16 * 16)


def highest_quality_accepted(image: Image.Image, **options: object) -> bytes:
    """The JPEG of ``image`` at the highest quality (in steps of 5, then 1) that the header checks accept: the
    most compressed data a stranger can send at this size; where none is accepted, the quality-1 file (its
    row then shows the refusal)."""
    for quality in [*range(95, 0, -5), 1]:
        data = encoded(image, "JPEG", quality=quality, **options)
        try:
            load_rgb(data, 224)
        except ImageError:
            continue
        return data
    return data


def jpeg_cases() -> Iterator[tuple[str, Callable[[], bytes]]]:
    edge = side("JPEG")
    yield f"JPEG {edge}x{edge} RGB baseline q95 4:4:4", lambda: encoded(noise("RGB", edge), "JPEG", quality=95, subsampling=0)
    yield f"JPEG {edge}x{edge} RGB baseline q95 4:2:0, restart every block", lambda: encoded(
        noise("RGB", edge), "JPEG", quality=95, restart_marker_blocks=1)
    yield f"JPEG {edge}x{edge} CMYK baseline q95", lambda: encoded(noise("CMYK", edge), "JPEG", quality=95)
    variants = [("gray", "L", {}, 1), ("RGB 4:2:0", "RGB", {"subsampling": 2}, 1.5),
                ("RGB 4:2:2", "RGB", {"subsampling": 1}, 2), ("RGB 4:4:4", "RGB", {"subsampling": 0}, 3),
                ("CMYK", "CMYK", {}, 4)]
    for name, mode, options, blocks in variants:
        edge = progressive_side(blocks / 64)
        yield f"JPEG {edge}x{edge} {name} progressive, scans repeated up to the limits", (
            lambda edge=edge, mode=mode, options=options: repeated_scan(
                encoded(Image.new(mode, (edge, edge)), "JPEG", progressive=True, quality=50, **options)))
        yield f"JPEG {edge}x{edge} {name} progressive noise q95", lambda edge=edge, mode=mode, options=options: encoded(
            noise(mode, edge), "JPEG", quality=95, progressive=True, **options)
    edge = progressive_side(4 / 64)
    yield f"JPEG {edge}x{edge} YCCK progressive, scans repeated up to the limits", lambda: as_ycck(repeated_scan(
        encoded(Image.new("CMYK", (edge, edge)), "JPEG", progressive=True, quality=50)))
    edge = progressive_side(3 / 64)
    yield f"JPEG {edge}x{edge} RGB 4:4:4 progressive, scans repeated up to the limits, restart every block", (
        lambda: repeated_scan(encoded(Image.new("RGB", (edge, edge)), "JPEG", progressive=True, quality=50,
                                      subsampling=0, restart_marker_blocks=1)))
    for name, mode, options, blocks in variants:
        edge = progressive_side(blocks / 64)
        yield f"JPEG {edge}x{edge} {name} progressive, fine noise, the highest quality accepted", (
            lambda edge=edge, mode=mode, options=options: highest_quality_accepted(
                noise(mode, edge, scale=1), progressive=True, **options))
    edge = side("JPEG")
    yield f"JPEG {edge}x{edge} gray, 100 scans (refused: blocks walked)", lambda: repeated_scan(
        encoded(Image.new("L", (edge, edge)), "JPEG", progressive=True, quality=50), budget=10**12)
    yield f"JPEG {edge}x{edge} CMYK progressive (refused: blocks held)", lambda: encoded(
        Image.new("CMYK", (edge, edge)), "JPEG", progressive=True, quality=50)
    yield "JPEG 7000x7000 RGB, 20,000 scans (refused: scans)", lambda: _many_scans(20_000)


# -- PNG ---------------------------------------------------------------------------------------


def png(width: int, height: int, depth: int, color_type: int, *, interlace: bool = False,
        palette_size: int = 0, transparency: bool = False) -> bytes:
    """A PNG of blank rows, each Paeth-filtered (the costliest filter to undo): tiny files, full decoding work."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x04" + bytes(-(-width * channels * depth // 8))
    compressor = zlib.compressobj(9)
    rows = height * (2 if interlace else 1)  # Adam7's seven passes hold about as many rows again, shorter
    body = b"".join(compressor.compress(row * 1000) for _ in range(rows // 1000)) + compressor.compress(row * (rows % 1000))
    body += compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlace))
    extra = chunk(b"PLTE", bytes(index % 256 for index in range(3 * palette_size))) if palette_size else b""
    extra += chunk(b"tRNS", b"\x00" * (palette_size or 2 * channels)) if transparency else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def data_side(bits: int) -> int:
    """The side of the largest square PNG or BMP of ``bits`` bits per pixel that the header checks let through."""
    return int(min(MAX_PIXELS, MAX_PIXEL_DATA_BYTES * 8 // bits) ** 0.5) - 8


def png_cases() -> Iterator[tuple[str, Callable[[], bytes]]]:
    edge = data_side(32)
    yield f"PNG {edge}x{edge} RGBA noise", lambda: encoded(noise("RGBA", edge), "PNG")
    yield "PNG 7000x7000 RGBA (refused: pixel data)", lambda: png(7000, 7000, 8, 6)
    for depth, color_type, name in [(16, 6, "16-bit RGBA"), (16, 2, "16-bit RGB"), (8, 6, "8-bit RGBA"),
                                    (8, 2, "8-bit RGB"), (16, 4, "16-bit gray+alpha"), (16, 0, "16-bit gray"),
                                    (8, 0, "8-bit gray"), (1, 0, "1-bit gray")]:
        edge = data_side(depth * {0: 1, 2: 3, 4: 2, 6: 4}[color_type])
        for interlace in (False, True):
            yield f"PNG {edge}x{edge} {name}{', Adam7' if interlace else ''}, Paeth rows", (
                lambda edge=edge, depth=depth, color_type=color_type, interlace=interlace: png(
                    edge, edge, depth, color_type, interlace=interlace))
    for depth in (1, 8):
        edge = data_side(depth)
        yield f"PNG {edge}x{edge} {depth}-bit palette + tRNS, Adam7, Paeth rows", lambda edge=edge, depth=depth: png(
            edge, edge, depth, 3, interlace=True, palette_size=2**depth, transparency=True)
    edge = data_side(24)
    yield f"PNG {edge}x{edge} 8-bit RGB with tRNS, Paeth rows", lambda: png(edge, edge, 8, 2, transparency=True)


# -- GIF, WebP, BMP ----------------------------------------------------------------------------


def animation(format_: str, edge: int, frames: int, **options: object) -> bytes:
    """A full-size noisy first frame, then frames that each change a small patch (built one at a time)."""
    first = noise("L", edge).convert("P") if format_ == "GIF" else noise("RGB", edge)

    def rest() -> Iterator[Image.Image]:
        for index in range(1, frames):
            frame = first.copy()
            frame.paste(index % 200 if format_ == "GIF" else (index % 200,) * 3, (0, 0, 64, 64))
            yield frame

    return encoded(first, format_, save_all=True, append_images=rest(), **options)


def bmp(width: int, height: int, bits: int, compression: int = 0, body: bytes | None = None) -> bytes:
    """A BMP with a BITMAPINFOHEADER; compression 1 or 2 (RLE8, RLE4) is filled with one pixel and an end of line per row."""
    colors = 2**bits if bits <= 8 else 0
    palette = bytes(index % 256 for index in range(4 * colors))
    masks = struct.pack("<III", 0xF800, 0x7E0, 0x1F) if compression == 3 else b""
    if body is None:
        stride = ((width * bits + 31) >> 3) & ~3
        body = b"\x01\x05\x00\x00" * height + b"\x00\x01" if compression in (1, 2) else bytes(stride * height)
    offset = 14 + 40 + len(masks) + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(body), 2835, 2835, colors, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + masks + palette + body


def rle_bmp(width: int, height: int, rle4: bool = False) -> bytes:
    """Run-length BMP whose rows each hold one pixel and an end of line: Pillow fills the rest a byte at a time."""
    return bmp(width, height, 4 if rle4 else 8, 2 if rle4 else 1)


def other_cases() -> Iterator[tuple[str, Callable[[], bytes]]]:
    edge, webp_edge = side("GIF"), side("WEBP")
    yield f"GIF {edge}x{edge} noise", lambda: encoded(noise("L", edge).convert("P"), "GIF")
    yield f"GIF {edge}x{edge} interlaced, 50 frames", lambda: animation("GIF", edge, 50, interlace=True)
    yield f"WebP {webp_edge}x{webp_edge} lossless noise", lambda: encoded(noise("RGB", webp_edge), "WEBP", lossless=True)
    yield f"WebP {webp_edge}x{webp_edge} lossy q100 noise", lambda: encoded(noise("RGB", webp_edge), "WEBP", quality=100)
    yield f"WebP {webp_edge}x{webp_edge} RGBA lossless", lambda: encoded(noise("RGBA", webp_edge), "WEBP", lossless=True)
    yield f"WebP {webp_edge}x{webp_edge} animated, 20 frames", lambda: animation("WEBP", webp_edge, 20, lossless=True)
    yield "WebP 7000x7000 lossless (refused: over the WebP limit)", lambda: encoded(Image.new("RGB", (7000, 7000)), "WEBP",
                                                                                   lossless=True)
    for bits in (1, 4, 8, 16, 24, 32):
        edge = data_side(bits)
        yield f"BMP {edge}x{edge} {bits}-bit", lambda edge=edge, bits=bits: bmp(edge, edge, bits)
    edge = data_side(16)
    yield f"BMP {edge}x{edge} 16-bit bitfields 5-6-5", lambda: bmp(edge, edge, 16, 3)
    yield "BMP 7000x7000 24-bit (refused: pixel data)", lambda: bmp(7000, 7000, 24)
    edge = side("BMP")
    yield f"BMP {edge}x{edge} 8-bit RLE8 (refused)", lambda: rle_bmp(edge, edge)
    yield "BMP 179000x270 8-bit RLE8, 2 KB (refused)", lambda: rle_bmp(179_000, 270)
    yield f"BMP {edge}x{edge} 4-bit RLE4 (refused)", lambda: rle_bmp(edge, edge, rle4=True)
    yield "AVIF, corrupt (refused)", _corrupt_avif


def cases() -> Iterator[tuple[str, Callable[[], bytes]]]:
    yield from jpeg_cases()
    yield from png_cases()
    yield from other_cases()


def measure(data: bytes, folder: Path) -> tuple[float, float, float, str]:
    """CPU seconds, wall seconds, MB over the interpreter's and the outcome of ``load_rgb`` in a fresh process."""
    path = folder / "upload"
    path.write_bytes(data)
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=600)
    cpu, wall, memory, outcome = result.stdout.strip().split("|")
    return float(cpu), float(wall), float(memory), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="measure only the files whose name contains this text")
    only = parser.parse_args().only
    print(describe_machine())
    print("\n| file | size | CPU s | wall s | MB over interpreter | outcome |\n| --- | ---: | ---: | ---: | ---: | --- |")
    over = []
    with tempfile.TemporaryDirectory() as folder:
        for name, build in cases():
            if only not in name:
                continue
            data = build()
            cpu, wall, memory, outcome = measure(data, Path(folder))
            size = f"{len(data) / 2**20:.2f} MB" + (" (over the upload cap)" if len(data) > UPLOAD_CAP else "")
            row = f"| {name} | {size} | {cpu:.2f} | {wall:.2f} | {memory:.0f} | {outcome} |"
            print(row, flush=True)
            if cpu > CPU_BUDGET_S or memory > MEMORY_BUDGET_MB:
                over.append(row)
    print(f"\nOver the budget ({CPU_BUDGET_S} CPU s, {MEMORY_BUDGET_MB} MB):", *over or ["none"], sep="\n")
    print(describe_machine().splitlines()[0])
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()

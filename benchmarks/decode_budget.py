"""The decode budget: time and peak memory of decoding the costliest file of each kind we accept.

    python benchmarks/decode_budget.py

Each file is built at the limits a stranger can reach (49 MP, just under ``MAX_PIXELS``, or its
format's own lower limit; at
most the 25 MB upload cap; JPEGs at ``MAX_JPEG_SCANS`` scans) and decoded by
``bird_model.images.load_rgb`` in a fresh process, which reports its wall time and peak RSS
(VmHWM: ``ru_maxrss`` would carry over the parent's high-water mark through fork and exec;
the interpreter with Pillow and numpy alone is about 30 MB). The hostile files of
benchmarks/load.py are included, refused or not. This is the evidence that counting JPEG scans
and shrinking before conversion bound every decode, without a deadline or worker processes.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import _corrupt_avif, _many_scans, _striped
from benchmarks.machine import describe_machine
from bird_model.images import MAX_JPEG_SCANS

SIDE = 7000
UPLOAD_CAP = 25 * 2**20
PROBE = (
    "import re, sys, time; from pathlib import Path; from bird_model.images import ImageError, load_rgb\n"
    "start = time.perf_counter()\n"
    "try:\n    load_rgb(sys.argv[1], 224); outcome = 'decoded'\n"
    "except ImageError as error:\n    outcome = str(error)[:60]\n"
    "peak = int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) // 1024\n"
    "print(f'{time.perf_counter() - start:.2f}|{peak}|{outcome}')"
)


def noise(mode: str, side: int = SIDE, scale: int = 8) -> Image.Image:
    """Blocky noise: costly to decode like a photo, yet small enough to upload."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (side // scale, side // scale, channels), dtype=np.uint8)
    image = Image.fromarray(small.squeeze(), mode)
    return image.resize((side, side), Image.Resampling.NEAREST)


def encoded(image: Image.Image, format_: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_, **options)
    return buffer.getvalue()


def cases() -> dict[str, bytes]:
    return {
        "JPEG 7000x7000, quality 95, baseline": encoded(noise("RGB"), "JPEG", quality=95),
        f"JPEG 7000x7000, progressive, {MAX_JPEG_SCANS} scans": _many_scans(MAX_JPEG_SCANS),
        "JPEG 7000x7000, 20,000 scans (refused)": _many_scans(20_000),
        "PNG 7000x7000 RGBA": encoded(noise("RGBA"), "PNG"),
        "PNG 7000x7000 16-bit gray": encoded(_striped("I;16"), "PNG", optimize=True),
        "PNG 7000x7000 palette + transparency": encoded(_striped("P"), "PNG", optimize=True, transparency=0),
        "PNG 7000x7000 1-bit": encoded(noise("L").convert("1"), "PNG"),
        "WebP 7000x7000 lossless (refused: over 16 MP)": encoded(noise("RGB"), "WEBP", lossless=True),
        "WebP 4000x4000 lossless": encoded(noise("RGB", 4000), "WEBP", lossless=True),
        "BMP 7000x7000 8-bit RLE": encoded(noise("L", scale=100).convert("P"), "BMP", compression=1),
        "GIF 7000x7000": encoded(noise("L").convert("P"), "GIF"),
        "AVIF, corrupt (refused)": _corrupt_avif(),
    }


def main() -> None:
    print(describe_machine())
    print("\n| file | size | seconds | peak RSS MB | outcome |\n| --- | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in cases().items():
            path = Path(folder) / "upload"
            path.write_bytes(data)
            size = f"{len(data) / 2**20:.2f} MB" + (" (over the upload cap)" if len(data) > UPLOAD_CAP else "")
            result = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True,
                                    text=True, check=True)
            seconds, peak, outcome = result.stdout.strip().split("|")
            print(f"| {name} | {size} | {seconds} | {peak} | {outcome} |", flush=True)


if __name__ == "__main__":
    main()

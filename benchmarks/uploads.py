"""One client uploading large files in a loop: what the upload cache holds, and what is refused.

    python benchmarks/uploads.py [--model runs/parrots] [--uploads 40] [--megabytes 24]

Starts ``app.py`` with a cache folder of its own (``GRADIO_TEMP_DIR``), then posts ``--uploads``
different files of ``--megabytes`` each to ``/gradio_api/upload``, one after another, as fast
as the server takes them. Prints each answer's status, the cache's size after it, and the
largest size seen, against the budget in ``app.py`` (``UPLOAD_CACHE_BYTES``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app
from benchmarks.cold_start import _wait_until_answering, free_port
from benchmarks.machine import describe_machine

BOUNDARY = "benchmarkboundary"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"))
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--megabytes", type=float, default=24)
    parser.add_argument("--timeout", type=float, default=180, help="seconds for the server to start")
    return parser.parse_args()


def upload(url: str, index: int, size: int) -> int:
    """HTTP status of one multipart upload of ``size`` bytes, different from every other one."""
    payload = index.to_bytes(4, "big") * (size // 4)
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"blob{index}.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{BOUNDARY}--\r\n".encode()
    request = urllib.request.Request(f"{url}gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def cached_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("blob*.bin") if path.is_file())


def main() -> int:
    args = parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    size = int(args.megabytes * 1024 * 1024)
    print(describe_machine())
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryFile("w+") as log:
        env = {**os.environ, "BIRD_MODEL": str(args.model.resolve()), "GRADIO_SERVER_NAME": "127.0.0.1",
               "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": cache,
               "BIRD_LOG_DIR": str(Path(cache) / "log")}
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_answering(url, process, log, time.perf_counter() + args.timeout)
            statuses: Counter[int] = Counter()
            largest = 0
            start = time.perf_counter()
            for index in range(args.uploads):
                status = upload(url, index, size)
                statuses[status] += 1
                held = cached_bytes(Path(cache))
                largest = max(largest, held)
                print(f"upload {index + 1:3d}: HTTP {status}  cache {held / 1e6:7.1f} MB")
            seconds = time.perf_counter() - start
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"{args.uploads} uploads of {args.megabytes:g} MB in {seconds:.1f} s: "
          + ", ".join(f"HTTP {status} x{count}" for status, count in sorted(statuses.items())))
    print(f"largest cache: {largest / 1e6:.1f} MB (budget {app.UPLOAD_CACHE_BYTES / 1e6:.1f} MB)")
    print(describe_machine())
    return 0 if largest <= app.UPLOAD_CACHE_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())

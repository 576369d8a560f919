"""Cold start: from launching ``python app.py`` to the first prediction a client gets back.

    python benchmarks/cold_start.py [--model runs/parrots] [--photos ../shared/datasets/parrots] [--runs 3]

This is what a visitor waits for when a Space wakes up: interpreter start, imports, model
load, server start and one prediction through the public API, as ``gradio_client`` makes it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine
from bird_model.formats import SUPPORTED_EXTENSIONS

POLL_SECONDS = 0.05
"""Polling interval; a coarser one would add up to its length to every measurement."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"), help="model folder (default: runs/parrots)")
    parser.add_argument("--photos", type=Path, default=Path("../shared/datasets/parrots"),
                        help="folder searched recursively; its first photo is sent (default: ../shared/datasets/parrots)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a start counts as failed")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cold_start(model: Path, photo: Path, timeout: float) -> tuple[float, dict]:
    """Seconds from ``Popen`` to the first prediction, and that prediction."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "BIRD_MODEL": str(model.resolve()),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_answering(url, process, log, started + timeout)
            prediction = Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
            return time.perf_counter() - started, prediction
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_until_answering(url: str, process: subprocess.Popen, log: IO[str], deadline: float) -> None:
    while not _answers(url):
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read()}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"app.py did not answer at {url} in time.")
        time.sleep(POLL_SECONDS)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> None:
    args = parse_args()
    photo = next((p for p in sorted(args.photos.rglob("*")) if p.suffix.lower() in SUPPORTED_EXTENSIONS), None)
    if photo is None:
        raise SystemExit(f"No photos under {args.photos}.")
    seconds = []
    for run in range(1, args.runs + 1):
        elapsed, prediction = cold_start(args.model, photo, args.timeout)
        seconds.append(elapsed)
        print(f"run {run}: {elapsed:.2f} s → {prediction[0].get('label')}", flush=True)
    print(describe_machine())
    print(f"Model {args.model}; photo {photo}\n")
    print("| run | seconds |\n| --- | ---: |")
    for run, elapsed in enumerate(seconds, start=1):
        print(f"| {run} | {elapsed:.2f} |")
    print(f"| median | {statistics.median(seconds):.2f} |")


if __name__ == "__main__":
    main()

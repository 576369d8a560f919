"""Training at scale: train.py on N synthetic photos, its check, grouping, peak memory and phase-2 time.

    python benchmarks/scale.py                                  # N = 1,000, 6,000 and 20,000 photos, 100 classes
    python benchmarks/scale.py --photos 1000 --classes 100      # one size

For each N, a folder-per-class dataset of N distinct JPEGs (500x375, quality 90, about 60 KB:
coloured blobs on a noisy background, every photo its own layout, so near-duplicate grouping
merges none of them) is generated once under ``--work`` and reused by later invocations. Then
``train.py`` runs on it as a user runs it, with 1 + 1 epochs, the stand-in weights and an empty
photo cache, and this reports:

- check: seconds for reading, hashing, decoding and caching every photo (train.py's
  "Checked in" line), and the same check again from the cache it wrote (in this process);
- grouping: seconds for near-duplicate grouping (the same line);
- peak RSS: the largest sum of resident memory over train.py and all its descendants (the
  check's worker processes, TensorFlow's), sampled from /proc every 0.1 s;
- phase 2 per 1,000 training photos: from train.py's "Phase 2:" line to the end of its one
  fine-tuning epoch (the epoch-end line Keras prints), divided by the training photos.

Results print as a Markdown table (the one in benchmarks/README.md, "Training at scale") and go to a JSON
under benchmarks/results/. Run it alone on the machine: the figures are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine
from bird_model.data import load_dataset

PROXY_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_notop.proxy.weights.h5"
PHOTO_SIZE = (500, 375)
CHECKED = re.compile(r"^Checked in ([\d.]+) s .*near-duplicates grouped in ([\d.]+) s")
SPLIT = re.compile(r"^Split \(seed \d+\): (\d+) training")
EPOCH_END = re.compile(r"^\d+/\d+ - ")
SAMPLE_SECONDS = 0.1


@dataclass
class ScaleResult:
    photos: int
    classes: int
    training_photos: int
    check_seconds: float
    check_cached_seconds: float
    grouping_seconds: float
    peak_rss_mb: float
    phase2_seconds: float
    phase2_seconds_per_1000: float
    total_seconds: float
    load_before: float
    load_after: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, nargs="+", default=[1_000, 6_000, 20_000],
                        help="dataset sizes to run, in photos (default: 1000 6000 20000)")
    parser.add_argument("--classes", type=int, default=100, help="classes of every dataset (default: 100)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bird-scale",
                        help="where the generated datasets are kept for reuse (default: %(default)s)")
    parser.add_argument("--base-weights", default=str(PROXY_WEIGHTS),
                        help="train.py --base-weights (default: the stand-in weights)")
    parser.add_argument("--output", type=Path, help="results JSON (default: benchmarks/results/scale-<time>.json)")
    args = parser.parse_args()
    if any(photos < 2 * args.classes for photos in args.photos):
        parser.error("every --photos must give each class at least 2 photos")
    return args


def main() -> None:
    args = parse_args()
    output = args.output or ROOT / "benchmarks" / "results" / f"scale-{datetime.now():%Y%m%d-%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    print(describe_machine(), flush=True)
    results: list[ScaleResult] = []
    for photos in args.photos:
        dataset = generate_dataset(args.work / f"synthetic-{args.classes}x{photos}", photos, args.classes)
        results.append(measure(dataset, photos, args.classes, args.base_weights))
        output.write_text(json.dumps({"command": " ".join(sys.argv), "machine": describe_machine(),
                                      "results": [asdict(result) for result in results]}, indent=1))
        print(table(results), flush=True)
    print(f"\n{describe_machine()}\nRaw results: {output}")


def generate_dataset(folder: Path, photos: int, classes: int) -> Path:
    """``photos`` JPEGs spread evenly over ``classes`` folders; kept, and reused when complete."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    jobs = [(folder / f"species {index % classes:03d}" / f"{index:06d}.jpg", index) for index in range(photos)]
    for path, _ in jobs[:classes]:
        path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Generating {photos} photos of {classes} classes in {folder}", flush=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_photo, *zip(*jobs), chunksize=64))
    done.touch()
    return folder


def write_photo(path: Path, seed: int) -> None:
    """A 500x375 JPEG: a few soft coloured blobs on a noisy background, placed by ``seed``.

    Blobs at random places make the photos' difference hashes (a 9x8 brightness gradient)
    about 32 bits apart, far from the 6 that make near-duplicates.
    """
    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    coarse = rng.integers(0, 256, size=(9, 12, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-12, 13, size=(height, width, 3), dtype=np.int16)
    Image.fromarray(np.clip(image + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def measure(dataset: Path, photos: int, classes: int, base_weights: str) -> ScaleResult:
    """One train.py run on ``dataset`` with an empty photo cache, then its check again from that cache."""
    with tempfile.TemporaryDirectory(prefix="bird-scale-run-") as scratch:
        cache = Path(scratch) / "cache"
        command = [sys.executable, str(ROOT / "train.py"), "--data", str(dataset),
                   "--output", str(Path(scratch) / "run"), "--cache-dir", str(cache),
                   "--base-weights", base_weights, "--epochs", "1", "--fine-tune-epochs", "1"]
        print(f"\n=== {photos} photos: {' '.join(command)}", flush=True)
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        lines, peak_rss = run_and_watch(command)
        total = time.monotonic() - started
        load_after = os.getloadavg()[0]
        cached_started = time.monotonic()
        load_dataset([dataset], 224, cache, show_progress=False)
        check_cached = time.monotonic() - cached_started
    check, grouping = next(map(float, match.groups()) for _, line in lines if (match := CHECKED.match(line)))
    training = next(int(match.group(1)) for _, line in lines if (match := SPLIT.match(line)))
    phase2 = phase2_seconds(lines)
    return ScaleResult(photos, classes, training, check, check_cached, grouping, peak_rss / 2**20, phase2,
                       phase2 / training * 1000, total, load_before, load_after)


def run_and_watch(command: list[str]) -> tuple[list[tuple[float, str]], int]:
    """Run ``command``; its stdout lines with the time each arrived, and the process tree's peak RSS in bytes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    finished = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not finished.wait(SAMPLE_SECONDS):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines: list[tuple[float, str]] = []
    for line in process.stdout:
        lines.append((time.monotonic(), line.rstrip("\n")))
        print(line, end="", flush=True)
    process.wait()
    finished.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"train.py failed with exit status {process.returncode}")
    return lines, peak


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant, read from /proc (processes may end while it reads)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def phase2_seconds(lines: list[tuple[float, str]]) -> float:
    """From the "Phase 2:" line to the first epoch-end line after it (one fine-tuning epoch)."""
    start = next(index for index, (_, line) in enumerate(lines) if line.startswith("Phase 2:"))
    end = next(arrived for arrived, line in lines[start + 1 :] if EPOCH_END.match(line))
    return end - lines[start][0]


def table(results: list[ScaleResult]) -> str:
    rows = [
        "| photos (classes) | check, first run | check, from the cache | grouping | peak RSS, process tree "
        "| phase 2 per 1,000 training photos | train.py wall clock | load average |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows += [
        f"| {r.photos:,} ({r.classes}) | {r.check_seconds:.0f} s | {r.check_cached_seconds:.0f} s "
        f"| {r.grouping_seconds:.1f} s | {r.peak_rss_mb:,.0f} MB | {r.phase2_seconds_per_1000:.0f} s "
        f"| {r.total_seconds:.0f} s | {r.load_before:.1f} → {r.load_after:.1f} |"
        for r in results
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()

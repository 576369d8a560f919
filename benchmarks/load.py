"""Many callers at once: the served app under concurrent load, with bad and hostile files mixed in.

    python benchmarks/load.py [--model runs/parrots] [--photos ../shared/datasets/parrots]
                              [--concurrency N [N ...]] [--max-size N|none] [--requests 1000] [--callers 16]

For each queue setting it starts ``app.py`` on a free port, then ``--callers`` threads, each
with its own ``gradio_client.Client``, send ``--requests`` photos in total through the public
API: the reference photos at their own sizes, large legitimate photos (a 6000x4000 JPEG, a
few 3000x2000 PNGs), about 5% bad files and a quarter of hostile files (tiny files built to
exhaust memory or CPU: 7000x7000 RGBA, 16-bit and palette PNGs, a 20,000-scan progressive JPEG,
and formats we do not decode: a corrupt AVIF and an EPS), all shuffled together so that bad
files are in flight beside good ones. Before the load, each hostile file is sent alone and
timed. It checks that every good photo is answered, that every bad or refused hostile file
gets the message of its own kind (so a bad file never fails someone else's request), and
reports throughput, client-side latency (all requests, and good photos alone) and the
server's peak memory. ``--concurrency`` and
``--max-size`` override app.py's ``CONCURRENCY_LIMIT`` and ``QUEUE_MAX_SIZE`` (the default is
app.py's own setting); Gradio's defaults are ``--concurrency 1 --max-size none``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app
from benchmarks.cold_start import _wait_until_answering, free_port
from benchmarks.machine import describe_machine
from bird_model.formats import SUPPORTED_EXTENSIONS

REFERENCE = "reference photo"
LARGE_JPEG = "6000x4000 JPEG"
LARGE_PNG = "3000x2000 PNG"
GIANT_PNG = "7000x7000 RGBA PNG"
GOOD_KINDS = (REFERENCE, LARGE_JPEG, LARGE_PNG)
"""The photos a visitor sends; their p95 is reported apart, as what hostile traffic costs them."""

GRAY16_PNG = "7000x7000 16-bit gray PNG"
PALETTE_PNG = "7000x7000 palette PNG"
HOSTILE_ANSWERED = (PALETTE_PNG,)
"""Hostile to memory, but a photo all the same: answered, within the memory budget (49 MB of
pixel data, under ``bird_model.decode_budget.MAX_PIXEL_DATA_BYTES``)."""

BAD_MESSAGES = {
    "not an image": "not an image in a supported format",
    "truncated JPEG": "corrupt or truncated",
    "empty file": "The file is empty.",
    "5x5 PNG": "too small: 5x5 pixels",
    "decompression bomb": "too large",
}
HOSTILE_MESSAGES = {
    GIANT_PNG: "MB of pixel data, over the limit",
    GRAY16_PNG: "MB of pixel data, over the limit",
    "20,000-scan JPEG": "more than 100 progressive scans",
    "corrupt AVIF": "not an image in a supported format",
    "EPS": "not an image in a supported format",
}
EXPECTED_MESSAGES = {**BAD_MESSAGES, **HOSTILE_MESSAGES}
"""Each refused kind and a phrase of its message (see ``bird_model/images.py``)."""
HOSTILE_KINDS = (*HOSTILE_ANSWERED, *HOSTILE_MESSAGES)

SHARES = {LARGE_JPEG: 0.03, LARGE_PNG: 0.02, **{kind: 0.01 for kind in BAD_MESSAGES},
          **{kind: 0.05 for kind in HOSTILE_KINDS}}
"""Fraction of the requests per kind; the reference photos take the rest (5% bad, 30% hostile files)."""

HOSTILE_SECONDS = 10.0
"""Longest a hostile file sent alone may take to get its answer or message."""

LARGE_PNG_COUNT = 3
"""Distinct 3000x2000 PNGs: PNG decoding is the costliest legitimate request, so vary the content."""

SAMPLE_SECONDS = 0.05
TREE_EVERY = 20

SHOWN_FAILURES = 10

MEMORY_BUDGET = 1.0 * 2**30
"""Peak server RSS allowed through a run (the issue's bound); a run above it fails the benchmark."""

CLIENT_RACE = "concurrent.futures._base.CancelledError"
"""What ``gradio_client`` raises, rarely (3 times in 37,000 calls), when the server closes a
session's event stream (its last event done) just as the same ``Client`` joins the queue with
the next one. It happens with a trivial Gradio app too and at any concurrency limit, so it
is counted apart from the app's own failures."""


@dataclass(frozen=True)
class Outcome:
    kind: str
    file: str
    seconds: float
    error: str | None
    """The client's exception as ``module.Type: message``; None for an answer."""


@dataclass(frozen=True)
class Run:
    label: str
    outcomes: list[Outcome]
    wall_seconds: float
    peak_rss: int
    """Largest sum of VmRSS over the server and its children, sampled every ``SAMPLE_SECONDS``."""
    hwm: int
    """VmHWM (the kernel's own peak RSS) summed over the same processes, read at the end."""
    cpu_seconds: tuple[float, float, float]
    """CPU time during the run of the server, the callers (this process) and everything else on the machine.

    The callers share the cores with the server, and so do other people's jobs; the third
    figure says how much of the machine they took.
    """
    cache_files: int
    cache_bytes: int
    loads: tuple[str, str]
    """Load average before and after the run."""
    server_log: str
    """The end of app.py's output, printed when something failed."""
    solo: list[Outcome]
    """Each hostile file sent alone, before the load."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"), help="model folder (default: runs/parrots)")
    parser.add_argument("--photos", type=Path, default=Path("../shared/datasets/parrots"),
                        help="folder searched recursively for reference photos (default: ../shared/datasets/parrots)")
    parser.add_argument("--concurrency", type=_limit, nargs="+", default=[app.CONCURRENCY_LIMIT],
                        help=f"one run per value: the queue's default_concurrency_limit (default: app.py's "
                             f"{app.CONCURRENCY_LIMIT})")
    parser.add_argument("--max-size", type=_limit, default=app.QUEUE_MAX_SIZE,
                        help=f"the queue's max_size, or none (default: app.py's {app.QUEUE_MAX_SIZE})")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the server to start")
    return parser.parse_args()


def _limit(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def make_files(photos: list[Path], folder: Path) -> dict[str, list[Path]]:
    """The photo set per kind; generated files go to ``folder`` (never into the repository)."""
    largest = sorted(photos, key=_pixels)[-LARGE_PNG_COUNT:]
    source_jpeg = next(p for p in reversed(largest) if p.suffix.lower() in {".jpg", ".jpeg"})
    return {
        REFERENCE: photos,
        LARGE_JPEG: [_upscaled(largest[-1], (6000, 4000), folder / "large.jpg")],
        LARGE_PNG: [_upscaled(p, (3000, 2000), folder / f"large-{i}.png") for i, p in enumerate(largest)],
        # Just under the 50-megapixel limit, with transparency: the costliest photo that is accepted
        # (blocky, so the file stays well under the 25 MB upload limit).
        GIANT_PNG: [_saved(_blocky(largest[0], (7000, 7000)), folder / "giant.png", optimize=True)],
        "not an image": [_write(folder / "notes.jpg", b"These are my field notes, not a photo.\n" * 50)],
        "truncated JPEG": [_write(folder / "truncated.jpg", _first_half(source_jpeg))],
        "empty file": [_write(folder / "empty.jpg", b"")],
        "5x5 PNG": [_saved(Image.new("RGB", (5, 5), (0, 128, 0)), folder / "tiny.png")],
        # 144 megapixels of zeros compress to a few hundred KB: a decompression bomb.
        "decompression bomb": [_saved(Image.new("L", (12000, 12000)), folder / "bomb.png", optimize=True)],
        GRAY16_PNG: [_saved(_striped("I;16"), folder / "gray16.png", optimize=True)],
        PALETTE_PNG: [_saved(_striped("P"), folder / "palette.png", optimize=True, transparency=0)],
        "20,000-scan JPEG": [_write(folder / "scans.jpg", _many_scans(20_000))],
        "corrupt AVIF": [_write(folder / "corrupt.avif", _corrupt_avif())],
        "EPS": [_write(folder / "figure.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n")],
    }


def _striped(mode: str) -> Image.Image:
    """7000x7000 of alternating rows: 49 MP that compress to about 100 KB."""
    stripes = np.zeros((7000, 7000), dtype=np.uint16 if mode == "I;16" else np.uint8)
    stripes[::2] = 40000 if mode == "I;16" else 1
    image = Image.fromarray(stripes)
    if mode == "P":
        image = image.convert("P")
        image.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    return image


def _many_scans(scans: int) -> bytes:
    """A 7000x7000 progressive JPEG whose smallest scan repeats: about 1.2 MB, 35 s to decode in full."""
    encoded = io.BytesIO()
    Image.new("RGB", (7000, 7000), (120, 130, 140)).save(encoded, "JPEG", progressive=True, quality=50)
    data = encoded.getvalue()
    end = data.rindex(b"\xff\xd9")
    starts = [match.start() for match in re.finditer(b"\xff\xda", data)]
    parts = [data[start:following] for start, following in zip(starts, [*starts[1:], end])]
    return data[:end] + min(parts[1:], key=len) * (scans - len(parts)) + data[end:]


def _corrupt_avif() -> bytes:
    encoded = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(encoded, "AVIF")
    data = encoded.getvalue()
    return data[: len(data) // 2] + bytes(100)


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def _upscaled(source: Path, size: tuple[int, int], target: Path) -> Path:
    with Image.open(source) as image:
        return _saved(image.convert("RGB").resize(size, Image.Resampling.BICUBIC), target, quality=90)


def _blocky(source: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(source) as image:
        small = image.convert("RGBA").resize((size[0] // 100, size[1] // 100))
    return small.resize(size, Image.Resampling.NEAREST)


def _saved(image: Image.Image, target: Path, **options: object) -> Path:
    image.save(target, **options)
    return target


def _first_half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def _write(target: Path, data: bytes) -> Path:
    target.write_bytes(data)
    return target


def build_plan(files: dict[str, list[Path]], requests: int, rng: random.Random) -> list[tuple[str, Path]]:
    """``requests`` (kind, file) pairs in random order, each file of a kind used in turn."""
    counts = {kind: max(1, round(share * requests)) for kind, share in SHARES.items()}
    counts[REFERENCE] = requests - sum(counts.values())
    plan = []
    for kind, count in counts.items():
        choices = rng.sample(files[kind], len(files[kind]))
        plan += [(kind, choices[i % len(choices)]) for i in range(count)]
    rng.shuffle(plan)
    return plan


class MemorySampler:
    """Peak resident memory of a process tree, polled in a thread.

    A poll can miss a short spike between two samples, so the kernel's own high-water mark
    (VmHWM) is read at the end as well.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        """Finding the tree scans all of ``/proc`` (milliseconds), so it is redone only every ``TREE_EVERY`` samples."""
        for sample in itertools.count():
            if sample % TREE_EVERY == 0:
                pids = process_tree(self.pid)
            self.peak = max(self.peak, sum(_status_kb(pid, "VmRSS") for pid in pids) * 1024)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def high_water_mark(self) -> int:
        return sum(_status_kb(pid, "VmHWM") for pid in process_tree(self.pid)) * 1024


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, found by their parent ids in ``/proc/*/stat``.

    Read this way because ``/proc/PID/task/TID/children`` is missing on kernels built
    without ``CONFIG_PROC_CHILDREN``, as on the machine these figures come from.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _cpu_split(server: int) -> tuple[float, float, float]:
    """Cumulative CPU seconds so far: the server's, this process's, and the rest of the machine's."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    server_cpu, client_cpu = _cpu_seconds(server), time.process_time()
    return server_cpu, client_cpu, busy - server_cpu - client_cpu


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def send_all(url: str, plan: list[tuple[str, Path]], callers: int) -> tuple[list[Outcome], float]:
    """Every request of ``plan`` through ``callers`` threads; the outcomes and the wall-clock seconds.

    Each thread connects its own ``Client`` before the clock starts, then takes the next
    request from a shared queue, so all callers stay busy until the plan runs out.
    """
    jobs: queue.SimpleQueue[tuple[str, Path]] = queue.SimpleQueue()
    for job in plan:
        jobs.put(job)
    outcomes: list[Outcome] = []
    ready = threading.Barrier(callers + 1)

    def caller() -> None:
        client = _client(url)
        ready.wait()
        while True:
            try:
                kind, path = jobs.get_nowait()
            except queue.Empty:
                return
            outcomes.append(_request(client, kind, path))

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def _client(url: str) -> Client:
    """A ``Client`` that skips loading the CA bundle, which it does for every HTTP call.

    The server is plain HTTP on 127.0.0.1, so nothing is verified either way; loading the
    bundle cost the callers 70 ms of CPU per request (10x the server's own work) on the
    cores they share with the server, where a real visitor's client costs the server nothing.
    """
    return Client(url, verbose=False, ssl_verify=False)


def _request(client: Client, kind: str, path: Path) -> Outcome:
    started = time.perf_counter()
    try:
        label, details = client.predict(handle_file(str(path)), api_name="/predict")
        error = None if details.get("verdict") in {"known", "unknown"} and label.get("label") else f"odd answer {label}"
    except Exception as exception:  # noqa: BLE001 - any failure is a result to count, not a reason to stop
        error = f"{type(exception).__module__}.{type(exception).__name__}: {exception}"
    return Outcome(kind, path.name, time.perf_counter() - started, error)


def run_server(model: Path, concurrency: int | None, max_size: int | None, plan: list[tuple[str, Path]],
               callers: int, timeout: float) -> Run:
    """Start app.py with the given queue setting, warm it with one photo, then send ``plan``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    label = f"concurrency {concurrency}, max_size {max_size}"
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryFile("w+") as log:
        env = {
            **os.environ,
            "BIRD_MODEL": str(model.resolve()),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": cache,
            "BIRD_LOG_DIR": str(Path(cache) / "prediction-log"),
        }
        launcher = (f"import sys, app; app.CONCURRENCY_LIMIT = {concurrency!r}; "
                    f"app.QUEUE_MAX_SIZE = {max_size!r}; sys.exit(app.main())")
        process = subprocess.Popen([sys.executable, "-c", launcher], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            _wait_until_answering(url, process, log, time.perf_counter() + timeout)
            warm = _client(url)
            warm.predict(handle_file(str(plan[0][1])), api_name="/predict")
            solo = [_request(warm, kind, path) for kind, path in dict(plan).items() if kind in HOSTILE_KINDS]
            load_before = _load()
            cpu_before = _cpu_split(process.pid)
            with MemorySampler(process.pid) as memory:
                outcomes, wall = send_all(url, plan, callers)
            cpu = tuple(after - before for after, before in zip(_cpu_split(process.pid), cpu_before))
            files = [p for p in Path(cache).rglob("*") if p.is_file()]
            return Run(
                label, outcomes, wall, memory.peak, memory.high_water_mark(), cpu, len(files),
                sum(p.stat().st_size for p in files), (load_before, _load()), _tail(log), solo,
            )
        finally:
            process.terminate()
            process.wait(timeout=30)


def _tail(log: IO[str], characters: int = 4000) -> str:
    log.seek(0)
    return log.read()[-characters:]


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def good_failures(run: Run) -> list[Outcome]:
    """Photos (hostile-sized ones included) that got no answer."""
    return [o for o in run.outcomes
            if o.kind in (*GOOD_KINDS, *HOSTILE_ANSWERED) and o.error is not None and not _client_race(o)]


def slow_or_wrong_solo(run: Run) -> list[Outcome]:
    """Hostile files that, alone, took over HOSTILE_SECONDS or got another kind's message."""
    return [o for o in run.solo if o.seconds > HOSTILE_SECONDS
            or (o.kind in EXPECTED_MESSAGES and (o.error is None or EXPECTED_MESSAGES[o.kind] not in o.error))
            or (o.kind in HOSTILE_ANSWERED and o.error is not None)]


def client_races(run: Run) -> list[Outcome]:
    return [o for o in run.outcomes if _client_race(o)]


def _client_race(outcome: Outcome) -> bool:
    return outcome.error is not None and outcome.error.startswith(CLIENT_RACE)


def wrong_messages(run: Run) -> list[Outcome]:
    """Bad files answered, or refused with a message that is not their own kind's."""
    return [o for o in run.outcomes
            if o.kind in EXPECTED_MESSAGES and not _client_race(o)
            and (o.error is None or EXPECTED_MESSAGES[o.kind] not in o.error)]


def summary_row(run: Run) -> str:
    seconds = [o.seconds for o in run.outcomes]
    good = [o.seconds for o in run.outcomes if o.kind in GOOD_KINDS]
    bad = [o for o in run.outcomes if o.kind in EXPECTED_MESSAGES]
    return (
        f"| {run.label} | {len(run.outcomes)} | {len(run.outcomes) / run.wall_seconds:.1f} | "
        f"{statistics.median(seconds) * 1000:.0f} | {_percentile(seconds, 0.95) * 1000:.0f} | "
        f"{_percentile(good, 0.95) * 1000:.0f} | "
        f"{run.peak_rss / 2**20:.0f} / {run.hwm / 2**20:.0f} | {len(good_failures(run))} "
        f"{f'(+{len(client_races(run))} client race)' if client_races(run) else ''}| "
        f"{len(bad) - len(wrong_messages(run))}/{len(bad)} | "
        f"{' / '.join(f'{seconds:.0f}' for seconds in run.cpu_seconds)} | "
        f"{run.cache_files} files, {run.cache_bytes / 2**20:.0f} MB | "
        f"{run.loads[0]} → {run.loads[1]} |"
    )


def print_kinds(run: Run) -> None:
    """Latency and the messages seen, per kind: a mixed-up message shows here by its text."""
    print(f"\n{run.label}\n\n| kind | requests | p50 ms | p95 ms | answered | messages seen |\n"
          "| --- | ---: | ---: | ---: | ---: | --- |")
    for kind in (*GOOD_KINDS, *HOSTILE_ANSWERED, *EXPECTED_MESSAGES):
        outcomes = [o for o in run.outcomes if o.kind == kind]
        seconds = [o.seconds for o in outcomes]
        messages = sorted({_shorten(o.error) for o in outcomes if o.error})
        print(f"| {kind} | {len(outcomes)} | {statistics.median(seconds) * 1000:.0f} | "
              f"{_percentile(seconds, 0.95) * 1000:.0f} | {sum(o.error is None for o in outcomes)} | "
              f"{'<br>'.join(messages) or '-'} |")


def _shorten(message: str, limit: int = 130) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def main() -> int:
    args = parse_args()
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not photos:
        raise SystemExit(f"No photos under {args.photos}.")
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(photos, Path(folder))
        plan = build_plan(files, args.requests, random.Random(args.seed))
        for concurrency in args.concurrency:
            runs.append(run_server(args.model, concurrency, args.max_size, plan, args.callers, args.timeout))
            print(f"done: {summary_row(runs[-1])}", flush=True)
    print(f"\n{describe_machine()}")
    print(f"Model {args.model}; {args.requests} requests from {args.callers} callers; "
          f"python benchmarks/load.py {' '.join(sys.argv[1:])}\n")
    print("| setting | requests | req/s | p50 ms | p95 ms | good-photo p95 ms | peak RSS MB (sampled / VmHWM) "
          "| good-photo failures | refused files with their own message | CPU s server / callers / others "
          "| upload cache | load average before → after |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        print(summary_row(run))
    for run in runs:
        print(f"\n{run.label}: each hostile file alone\n\n| kind | seconds | answer or message |\n| --- | ---: | --- |")
        for outcome in run.solo:
            print(f"| {outcome.kind} | {outcome.seconds:.2f} | {_shorten(outcome.error or 'answered')} |")
        print_kinds(run)
        failed = good_failures(run) + wrong_messages(run) + slow_or_wrong_solo(run)
        for outcome in failed[:SHOWN_FAILURES]:
            print(f"FAILED: {outcome}")
        if len(failed) > SHOWN_FAILURES:
            print(f"... and {len(failed) - SHOWN_FAILURES} more failures")
        for outcome in client_races(run):
            print(f"client race (see CLIENT_RACE): {outcome}")
        if failed:
            print(f"app.py's output ends with:\n{run.server_log}")
    over_budget = [run.label for run in runs if max(run.peak_rss, run.hwm) > MEMORY_BUDGET]
    if over_budget:
        print(f"FAILED: peak RSS over {MEMORY_BUDGET / 2**30:.1f} GiB with {', '.join(over_budget)}")
    failed = any(good_failures(run) or wrong_messages(run) or slow_or_wrong_solo(run) for run in runs)
    return 0 if not over_budget and not failed else 1


if __name__ == "__main__":
    sys.exit(main())

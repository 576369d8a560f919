"""Watching a served model: the prediction log, what "normal" looks like, and drift reports.

A model is judged once, on its validation photos, and then served for months while the
photos people send change. This module keeps the evidence and compares it with that
judgement:

- **log**: every prediction the app serves becomes one JSON line (:func:`prediction_record`),
  written by a background thread (:class:`PredictionLog`) so a request only pays for a
  hash and a queue put; optionally mirrored to a Hub dataset repo, because a Space's disk
  is wiped at every restart;
- **baseline**: training saves ``baseline.json`` in the model folder (:func:`compute_baseline`):
  the training class distribution and the validation confidence and outlier-score
  distributions, i.e. what the served log should look like when nothing has changed;
- **report**: :func:`build_report` compares a log with a baseline and raises alarms on
  thresholds documented at :data:`PSI_ALARM` and :data:`RATE_FACTOR`; :func:`report_figures`
  draws it (matplotlib, Agg canvas, no global pyplot state, safe in server threads).
"""

from __future__ import annotations

import atexit
import bisect
import hashlib
import itertools
import json
import math
import os
import queue
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from bird_model.artifacts import BASELINE_FILE, ModelFolder, ModelFolderError
from bird_model.formats import extension_for
from bird_model.images import read_header

if TYPE_CHECKING:
    from huggingface_hub import CommitScheduler
    from matplotlib.figure import Figure

    from bird_model.feedback import VisitorReports
    from bird_model.hub import FetchedModel
    from bird_model.inference import Prediction
    from bird_model.ood import OutlierDetector

SCHEMA_VERSION = 1
BASELINE_VERSION = 1
LOG_GLOB = "predictions-*.jsonl"
IMAGES_DIR = "images"
FLUSH_SECONDS = 1.0
"""Longest a record waits in memory: a crash (SIGKILL, power loss) loses at most this much."""

CONFIDENCE_EDGES = [round(edge, 1) for edge in np.linspace(0.0, 1.0, 11)]
"""Fixed bins for the top confidence, so histograms of any two models and logs line up."""
LOW_CONFIDENCE = 0.5
"""A top class under 50% means the model thinks another class at least as likely as its answer."""
OUTLIER_QUANTILES = np.linspace(0.1, 0.9, 9)

MIN_RECORDS = 50
RECORDS_PER_CLASS = 10
"""No alarm below max(MIN_RECORDS, RECORDS_PER_CLASS x classes) predictions. Sampling noise
alone gives a PSI of about (K - 1) / n and a JS distance of about sqrt((K - 1) / (8 ln2 n))
for K classes and n predictions; with n >= 10 K these stay near 0.1, under both alarms,
however many classes the model has. Under 50, one photo moves a rate by 2 points."""
PSI_ALARM = 0.25
"""Population stability index of the predicted classes against training: the usual reading is
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a shift worth acting on."""
JS_ALARM = 0.2
"""Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint) of the predicted classes. Noise
alone averages 0.1 at the fewest predictions that may alarm (see RECORDS_PER_CLASS), so 0.1
would cry wolf. For 4 balanced classes, one class rising from 25% to 50% of the answers gives
JS 0.22 and PSI 0.27: both alarms fire at about the same shift."""
RATE_FACTOR = 3.0
RATE_MARGIN = 0.10
"""A rate (unknown or low-confidence answers) alarms when it is over RATE_FACTOR times its
validation rate *and* over it by RATE_MARGIN: the factor alone would alarm on 3% vs 1%, the
margin alone would ignore a rate going from 0.5% to 10%."""
SMOOTHING = 0.5
"""Pseudo-count added to every bin before the PSI's logarithm: an empty bin (common with a
few dozen validation photos) would otherwise make the index infinite."""


# -- what is logged -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelIdentity:
    """Which model answered: a Hub repo at a commit, or a local folder by absolute path."""

    repo: str | None = None
    commit: str | None = None
    path: str | None = None

    @classmethod
    def of(cls, fetched: FetchedModel) -> ModelIdentity:
        if fetched.repo_id is not None:
            return cls(repo=fetched.repo_id, commit=fetched.commit)
        return cls(path=str(fetched.folder.path.resolve()))

    def fields(self) -> dict[str, str | None]:
        return {"model_repo": self.repo, "model_commit": self.commit, "model_path": self.path}

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(record.get(key) == value for key, value in self.fields().items())


def prediction_record(
    prediction: Prediction, classes: list[str], upload: bytes, model: ModelIdentity, when: datetime
) -> dict[str, Any]:
    """One JSON line. ``probabilities`` follow ``classes`` (the model's output order)."""
    header = read_header(upload)
    return {
        "schema": SCHEMA_VERSION,
        "time": when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **model.fields(),
        "label": prediction.label,
        "confidence": prediction.confidence,
        "probabilities": [prediction.scores[name] for name in classes],
        "outlier_score": prediction.outlier_score,
        "unknown": prediction.unknown,
        "width": header.width,
        "height": header.height,
        "format": header.format,
        "sha256": hashlib.sha256(upload).hexdigest(),
    }


# -- writing the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    record: dict[str, Any]
    image: bytes | None


_STOP = object()


class PredictionLog:
    """Appends records to ``predictions-YYYY-MM-DD.jsonl`` (UTC day) from a background thread.

    :meth:`record` runs in the request: it reads and hashes the upload and queues the record.
    JSON encoding, writing, flushing and saving images happen in the writer thread, which
    flushes (and fsyncs) at most :data:`FLUSH_SECONDS` after any record. :meth:`close` (also
    registered with ``atexit``) drains the queue, flushes, and pushes a last mirror commit.
    """

    def __init__(
        self,
        folder: Path,
        model: ModelIdentity,
        classes: list[str],
        keep_images: bool = False,
        mirror: CommitScheduler | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.model, self.classes = folder, model, classes
        self.keep_images, self.mirror, self.flush_seconds = keep_images, mirror, flush_seconds
        self._queue: queue.SimpleQueue[_Entry | object] = queue.SimpleQueue()
        self._file: IO[str] | None = None
        self._day = ""
        self._failing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def record(self, photo: str | Path, prediction: Prediction) -> None:
        upload = Path(photo).read_bytes()
        record = prediction_record(prediction, self.classes, upload, self.model, datetime.now(timezone.utc))
        self._queue.put(_Entry(record, upload if self.keep_images else None))

    def close(self) -> None:
        """Idempotent; waits for every queued record to be on disk (and mirrored, with a mirror)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        if self.mirror is not None:
            _final_push(self.mirror)

    def _run(self) -> None:
        last_flush, dirty = time.monotonic(), False
        while True:
            wait = max(0.0, self.flush_seconds - (time.monotonic() - last_flush)) if dirty else None
            try:
                entry = self._queue.get(timeout=wait)
            except queue.Empty:
                entry = None
            if entry is _STOP:
                break
            if isinstance(entry, _Entry):
                self._guarded(self._write, entry)
                dirty = True
            if dirty and time.monotonic() - last_flush >= self.flush_seconds:
                self._guarded(self._flush)
                last_flush, dirty = time.monotonic(), False
        self._guarded(self._flush)
        if self._file is not None:
            self._file.close()

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """A full disk or a deleted folder must not end logging for good: say so once, keep trying."""
        try:
            action(*args)
        except OSError as error:
            if not self._failing:
                print(f"Prediction log: cannot write to {self.folder} ({error}); records are being lost.")
            self._failing = True
        else:
            self._failing = False

    def _write(self, entry: _Entry) -> None:
        day = entry.record["time"][:10]
        if day != self._day or self._file is None:
            if self._file is not None:
                self._flush()
                self._file.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = (self.folder / f"predictions-{day}.jsonl").open("a", encoding="utf-8")
            self._day = day
        if entry.image is not None:
            entry.record["image"] = self._save_image(entry.image, entry.record["sha256"], entry.record["format"])
        self._file.write(json.dumps(entry.record, ensure_ascii=False) + "\n")

    def _save_image(self, data: bytes, sha256: str, image_format: str) -> str:
        """Named by content and decoded format only: a visitor's file name (too long for the
        disk, or ending in ``.html``) must neither lose the record nor choose what is stored."""
        relative = f"{IMAGES_DIR}/{sha256}{extension_for(image_format)}"
        target = self.folder / relative
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
        return relative

    def _flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())


def _final_push(mirror: CommitScheduler) -> None:
    """Upload what the last flush wrote, in this thread.

    Stopping first keeps the scheduler from starting another push; one already running is
    waited for, so commits never overlap. The push runs here rather than through the
    client's executor because at interpreter exit (``atexit``) that executor takes no work.
    """
    mirror.stop()
    in_flight = getattr(mirror, "last_future", None)
    if in_flight is not None:
        futures.wait([in_flight])
    try:
        mirror.push_to_hub()
    except Exception as error:  # noqa: BLE001 - any Hub or network failure; the local log is intact
        print(f"Prediction log: last upload to {mirror.repo_id} failed ({error}); "
              f"the log stays in {mirror.folder_path}")


@dataclass(frozen=True)
class LogSettings:
    """``BIRD_LOG_DIR``, ``BIRD_LOG_IMAGES``, ``BIRD_LOG_REPO``, ``BIRD_LOG_EVERY``; see README.md."""

    folder: Path = Path("logs/predictions")
    keep_images: bool = False
    repo: str | None = None
    every_minutes: float = 5.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LogSettings:
        """Raises ``ValueError`` naming the variable that is wrong."""
        from bird_model.hub import is_repo_id

        repo = environ.get("BIRD_LOG_REPO") or None
        if repo is not None and not is_repo_id(repo):
            raise ValueError(f"BIRD_LOG_REPO={repo!r} is not a Hub repo id; expected OWNER/NAME.")
        every = environ.get("BIRD_LOG_EVERY") or str(cls.every_minutes)
        try:
            minutes = float(every)
        except ValueError:
            minutes = math.nan
        if not minutes > 0:
            raise ValueError(f"BIRD_LOG_EVERY={every!r} must be a positive number of minutes.")
        return cls(
            folder=Path(environ.get("BIRD_LOG_DIR") or cls.folder),
            keep_images=environ.get("BIRD_LOG_IMAGES", "").lower() in {"1", "true", "yes"},
            repo=repo,
            every_minutes=minutes,
        )


def open_log(settings: LogSettings, model: ModelIdentity, classes: list[str], token: str | None) -> PredictionLog:
    """The app's log; a mirror that cannot start is reported and skipped, serving goes on."""
    mirror = None
    if settings.repo is not None:
        from bird_model.hub import HubError, explained

        try:
            with explained(f"mirroring the prediction log to {settings.repo}"):
                mirror = start_mirror(settings.repo, settings.folder, settings.every_minutes, token)
        except HubError as error:
            print(f"Prediction log: {error} Logging locally only, to {settings.folder}.")
    return PredictionLog(settings.folder, model, classes, settings.keep_images, mirror)


def start_mirror(repo: str, folder: Path, every_minutes: float, token: str | None) -> CommitScheduler:
    """A private dataset repo (created if missing) receiving the log folder every few minutes:
    the prediction log, its images and visitors' feedback (:mod:`bird_model.feedback`)."""
    from huggingface_hub import CommitScheduler

    from bird_model.feedback import MIRROR_PATTERNS

    return CommitScheduler(
        repo_id=repo,
        repo_type="dataset",
        folder_path=folder,
        every=every_minutes,
        private=True,
        token=token,
        allow_patterns=[LOG_GLOB, f"{IMAGES_DIR}/*", *MIRROR_PATTERNS],
    )


# -- reading the log ----------------------------------------------------------------------


BUCKETS = [timedelta(minutes=m) for m in (1, 5, 15, 60, 360, 1440)]
"""Time buckets of the requests chart; each divides the next, so counts coarsen exactly."""
MAX_TIMELINE_BUCKETS = 20_000
"""A timeline holding more buckets than this moves to the next coarser bucket."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Timeline:
    """Predictions per time bucket, kept at most :data:`MAX_TIMELINE_BUCKETS` long.

    It starts at one minute and coarsens as the span grows, so a year of traffic costs as
    little memory as a day of it.
    """

    def __init__(self) -> None:
        self.bucket = BUCKETS[0]
        self.counts: Counter[datetime] = Counter()

    def add(self, moment: datetime) -> None:
        self.counts[_floor(moment, self.bucket)] += 1
        if len(self.counts) > MAX_TIMELINE_BUCKETS and self.bucket != BUCKETS[-1]:
            self._regroup(BUCKETS[BUCKETS.index(self.bucket) + 1])

    def bars(self, most: int = 48) -> tuple[list[tuple[datetime, int]], timedelta]:
        """Counts per bucket, the bucket being the shortest that gives at most ``most`` bars."""
        if not self.counts:
            return [], self.bucket
        span = max(self.counts) - min(self.counts)
        bucket = next((b for b in BUCKETS if b >= self.bucket and span / b < most), BUCKETS[-1])
        coarse: Counter[datetime] = Counter()
        for moment, count in self.counts.items():
            coarse[_floor(moment, bucket)] += count
        start, end = min(coarse), max(coarse)
        steps = int((end - start) / bucket) + 1
        return [(start + bucket * i, coarse.get(start + bucket * i, 0)) for i in range(steps)], bucket

    def _regroup(self, bucket: timedelta) -> None:
        counts: Counter[datetime] = Counter()
        for moment, count in self.counts.items():
            counts[_floor(moment, bucket)] += count
        self.bucket, self.counts = bucket, counts


def _floor(moment: datetime, bucket: timedelta) -> datetime:
    return _EPOCH + bucket * ((moment - _EPOCH) // bucket)


@dataclass
class LogSummary:
    """What a report needs from a log, counted record by record.

    Its size depends on the number of classes and bins, never on the number of records, so
    a report over a year of traffic needs as little memory as one over a day.
    """

    classes: list[str]
    confidence_edges: list[float]
    outlier_edges: list[float]
    low_confidence_threshold: float
    count: int = 0
    other_models: int = 0
    """Records of other models (or other class lists) than the one asked about."""
    unreadable: int = 0
    """Lines that are not JSON records: normally only a last line cut by a crash."""
    label_counts: Counter[str] = field(default_factory=Counter)
    confidence_counts: list[int] = field(default_factory=list)
    outlier_counts: list[int] = field(default_factory=list)
    low_confidence: int = 0
    unknown: int = 0
    timeline: Timeline = field(default_factory=Timeline)

    def __post_init__(self) -> None:
        self.confidence_counts = self.confidence_counts or [0] * (len(self.confidence_edges) - 1)
        self.outlier_counts = self.outlier_counts or [0] * (len(self.outlier_edges) - 1)

    def add(self, record: Mapping[str, Any]) -> None:
        self.count += 1
        self.label_counts[record["label"]] += 1
        confidence = record["confidence"]
        self.confidence_counts[bin_index(confidence, self.confidence_edges)] += 1
        self.low_confidence += confidence < self.low_confidence_threshold
        if record.get("outlier_score") is not None:
            self.outlier_counts[bin_index(float(record["outlier_score"]), self.outlier_edges)] += 1
        self.unknown += bool(record.get("unknown"))
        self.timeline.add(record["time"])


def read_log(
    folder: Path, model: ModelIdentity, baseline: Mapping[str, Any], since: datetime | None = None
) -> LogSummary:
    """Count the records of ``model`` in ``folder`` into ``baseline``'s bins. Raises ``FileNotFoundError``.

    Files are read a line at a time, and files of days before ``since`` are not opened.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"prediction log folder not found: {folder}")
    classes = baseline["classes"]
    summary = LogSummary(
        classes, baseline["confidence_edges"], baseline["outlier_edges"], baseline["low_confidence_threshold"]
    )
    first_day = since.astimezone(timezone.utc).date().isoformat() if since else ""
    for path in sorted(folder.glob(LOG_GLOB)):
        if path.stem.removeprefix("predictions-") < first_day:
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                record = _parse(line)
                if record is None:
                    summary.unreadable += 1
                elif not model.matches(record) or len(record["probabilities"]) != len(classes):
                    summary.other_models += 1
                elif since is None or record["time"] >= since:
                    summary.add(record)
    return summary


def _parse(line: str) -> dict[str, Any] | None:
    """A record with its time parsed, or None for a line that is not one."""
    try:
        record = json.loads(line)
        record["time"] = parse_time(record["time"])
        record["confidence"] = float(record["confidence"])
        if not isinstance(record["probabilities"], list):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return record


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without zone is UTC. Raises ``ValueError``."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- the baseline -------------------------------------------------------------------------


def compute_baseline(
    classes: list[str],
    train_labels: np.ndarray,
    validation_probabilities: np.ndarray,
    validation_features: np.ndarray,
    detector: OutlierDetector,
) -> dict[str, Any]:
    """What serving should look like if the world matches the data the model was built on.

    Histograms hold counts, not shares, so a report knows how much evidence the validation
    side carries. The outlier bins are the validation deciles plus the threshold, so each
    validation bin holds about 10% and the last bin, from the threshold up, holds unknown photos.
    """
    confidence = validation_probabilities.max(axis=1)
    scores = detector.score(validation_features)
    edges = outlier_edges(scores, detector.threshold)
    return {
        "format_version": BASELINE_VERSION,
        "classes": classes,
        "training_class_counts": np.bincount(train_labels, minlength=len(classes)).tolist(),
        "validation_count": len(confidence),
        "confidence_edges": CONFIDENCE_EDGES,
        "validation_confidence_counts": histogram(confidence, CONFIDENCE_EDGES),
        "low_confidence_threshold": LOW_CONFIDENCE,
        "validation_low_confidence_share": float(np.mean(confidence < LOW_CONFIDENCE)),
        "unknown_threshold": detector.threshold,
        "outlier_edges": edges,
        "validation_outlier_counts": histogram(scores, edges),
        "validation_unknown_share": float(np.mean(scores > detector.threshold)),
        "expected_unknown_share": float(np.sum(scores > detector.threshold) + 1) / (len(scores) + 1),
    }


def outlier_edges(scores: np.ndarray, threshold: float) -> list[float]:
    """Validation deciles and the threshold; the last bin runs from the threshold to infinity.

    ``2 * threshold`` only closes that bin; :func:`bin_index` counts larger scores in it.
    """
    cuts = np.quantile(scores, OUTLIER_QUANTILES).tolist() + [threshold, 2 * threshold]
    return [0.0] + sorted({float(cut) for cut in cuts if cut > 0})


def histogram(values: Iterable[float], edges: list[float]) -> list[int]:
    """Counts per bin ``[edges[i], edges[i+1])``, as :func:`bin_index` assigns them."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        counts[bin_index(float(value), edges)] += 1
    return counts


def bin_index(value: float, edges: list[float]) -> int:
    """The bin of ``value``; values below the first edge count in the first bin, from the last
    inner edge up (the last bin is open-ended: unknown photos) in the last."""
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)


def read_baseline(folder: ModelFolder) -> dict[str, Any]:
    """Raises ``ModelFolderError`` for a folder trained before baselines were saved."""
    path = folder.path / BASELINE_FILE
    if not path.is_file():
        raise ModelFolderError(
            f"{folder.path} has no {BASELINE_FILE}: it was trained before monitoring existed; retrain it to monitor it."
        )
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(baseline, dict) or baseline.get("classes") != folder.classes:
        raise ModelFolderError(f"{path} lists other classes than the model; the files come from different runs.")
    return baseline


# -- drift statistics ---------------------------------------------------------------------


def psi(observed: list[int], expected: list[int], smoothing: float = SMOOTHING) -> float:
    """Population stability index: sum of (p - q) ln(p / q) over bins, both sides smoothed."""
    p, q = _shares(observed, smoothing), _shares(expected, smoothing)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(observed: list[int], expected: list[int]) -> float:
    """Jensen-Shannon distance in base 2: the square root of the divergence, in [0, 1]."""
    p, q = _shares(observed, 0.0), _shares(expected, 0.0)
    middle = (p + q) / 2
    divergence = (_kl(p, middle) + _kl(q, middle)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def _shares(counts: list[int], smoothing: float) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64) + smoothing
    if values.sum() <= 0:
        raise ValueError("a distribution needs at least one count")
    return values / values.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A served histogram beside its baseline, with both drift scores."""

    bins: list[str]
    served: list[int]
    baseline: list[int]
    psi: float
    js: float

    @classmethod
    def of(cls, bins: list[str], served: list[int], baseline: list[int]) -> Comparison:
        """Drift scores are NaN while nothing has been served: there is no shape to compare yet."""
        if sum(served) == 0:
            return cls(bins, served, baseline, math.nan, math.nan)
        return cls(bins, served, baseline, psi(served, baseline), js_distance(served, baseline))


@dataclass(frozen=True)
class Check:
    name: str
    alarm: bool
    message: str


@dataclass(frozen=True)
class Report:
    model: str
    count: int
    other_models: int
    unreadable: int
    timeline: list[tuple[datetime, int]]
    bucket: timedelta
    classes: Comparison
    confidence: Comparison
    outlier: Comparison
    low_confidence_share: float
    baseline_low_confidence_share: float
    unknown_share: float
    baseline_unknown_share: float
    checks: list[Check] = field(default_factory=list)
    visitors: VisitorReports | None = None
    """What visitors reported through the page or ``/feedback`` (None: not read)."""

    @property
    def alarms(self) -> list[Check]:
        return [check for check in self.checks if check.alarm]


def build_report(
    log: LogSummary, baseline: Mapping[str, Any], model: str, visitors: VisitorReports | None = None
) -> Report:
    """``baseline`` is the served model's ``baseline.json``; ``model`` names the model in the text;
    ``visitors`` adds their reported accuracy and its check."""
    classes = baseline["classes"]
    timeline, bucket = log.timeline.bars()
    report = Report(
        model=model,
        count=log.count,
        other_models=log.other_models,
        unreadable=log.unreadable,
        timeline=timeline,
        bucket=bucket,
        classes=Comparison.of(classes, [log.label_counts[name] for name in classes], baseline["training_class_counts"]),
        confidence=Comparison.of(
            _bin_names(baseline["confidence_edges"]), log.confidence_counts, baseline["validation_confidence_counts"]
        ),
        outlier=Comparison.of(
            _bin_names(baseline["outlier_edges"]), log.outlier_counts, baseline["validation_outlier_counts"]
        ),
        low_confidence_share=_rate(log.low_confidence, log.count),
        baseline_low_confidence_share=baseline["validation_low_confidence_share"],
        unknown_share=_rate(log.unknown, log.count),
        baseline_unknown_share=baseline["expected_unknown_share"],
        visitors=visitors,
    )
    return replace(report, checks=checks(report) + ([visitors.check()] if visitors is not None else []))


def checks(report: Report) -> list[Check]:
    """The alarms a scheduled job acts on; the confidence and outlier-score PSI are shown but
    do not alarm, because their validation histograms rest on a few dozen photos: the two
    rates test the same signals with far less noise."""
    needed = max(MIN_RECORDS, RECORDS_PER_CLASS * len(report.classes.bins))
    if report.count < needed:
        return [Check("enough data", False, f"{report.count} predictions; alarms need at least {needed}.")]
    drift = report.classes.psi > PSI_ALARM or report.classes.js > JS_ALARM
    return [
        Check(
            "class drift",
            drift,
            f"predicted classes vs training: PSI {report.classes.psi:.3f} (alarm > {PSI_ALARM}), "
            f"JS distance {report.classes.js:.3f} (alarm > {JS_ALARM})",
        ),
        _rate_check("unknown answers", report.unknown_share, report.baseline_unknown_share, "expected"),
        _rate_check("low confidence", report.low_confidence_share, report.baseline_low_confidence_share, "validation"),
    ]


def _rate_check(name: str, rate: float, baseline: float, source: str) -> Check:
    limit = max(RATE_FACTOR * baseline, baseline + RATE_MARGIN)
    return Check(
        name,
        rate > limit,
        f"{rate:.1%} of answers ({source} {baseline:.1%}; alarm over {limit:.1%} = "
        f"more than {RATE_FACTOR:g}x and {RATE_MARGIN * 100:.0f} points above)",
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _bin_names(edges: list[float]) -> list[str]:
    names = [f"{low:.3g}-{high:.3g}" for low, high in itertools.pairwise(edges)]
    return names[:-1] + [f">={edges[-2]:.3g}"]


def format_report(report: Report) -> str:
    """The plain-text report the monitor command prints (and the app's tab shows)."""
    alarms = [check.name for check in report.alarms]
    lines = [
        f"Model: {report.model}",
        (
            f"Predictions: {report.count} ({report.other_models} of other models and "
            f"{report.unreadable} unreadable lines ignored)"
        ),
        *_period(report),
        *_comparison_lines("Predicted class", "training", report.classes),
        *_comparison_lines("Top confidence", "validation", report.confidence),
        *_comparison_lines("Outlier score", "validation", report.outlier),
        (
            f"Low-confidence answers: {report.low_confidence_share:.1%} "
            f"(validation {report.baseline_low_confidence_share:.1%})"
        ),
        f"Unknown answers: {report.unknown_share:.1%} (expected {report.baseline_unknown_share:.1%})",
        *(report.visitors.lines() if report.visitors is not None else []),
        "Checks:",
        *(f"  {'ALARM' if check.alarm else 'ok':5}  {check.name}: {check.message}" for check in report.checks),
        f"{len(alarms)} alarm(s)" + (f": {', '.join(alarms)}" if alarms else ""),
    ]
    return "\n".join(lines)


def _period(report: Report) -> list[str]:
    if not report.timeline:
        return []
    start, end = report.timeline[0][0], report.timeline[-1][0] + report.bucket
    busiest = max(count for _, count in report.timeline)
    per = _duration(report.bucket)
    mean = report.count / len(report.timeline)
    return [f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; per {per}: busiest {busiest}, mean {mean:.1f}"]


def _comparison_lines(title: str, reference: str, comparison: Comparison) -> list[str]:
    """A header with both drift scores, then one line per bin: served share, baseline share."""
    baseline = _shares(comparison.baseline, 0.0)
    served = _shares(comparison.served, 0.0) if sum(comparison.served) else [math.nan] * len(baseline)
    width = max(len(name) for name in comparison.bins)
    lines = [f"{title} (served vs {reference}): PSI {comparison.psi:.3f}, JS distance {comparison.js:.3f}"]
    rows = zip(comparison.bins, served, baseline)
    lines += [f"  {name:<{width}}  {mine:6.1%}  {theirs:6.1%}" for name, mine, theirs in rows]
    return lines


def _duration(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"


DASHBOARD_DAYS = 7
"""The app's tab reports the last week: recent enough that a new shift is not diluted by
months of normal traffic, and a bounded read however long the app has been serving."""
DASHBOARD_SECONDS = 10.0
"""The tab recomputes at most this often and shows the last result in between. Drawing and
encoding the four figures costs about 0.4 s of CPU, which holds the interpreter lock while
predictions wait; so even constant refreshing costs at most ~4% of the server's time."""


class Dashboard:
    """The app's Monitoring tab: the monitor command's report as Markdown, and its plots as PNG files."""

    def __init__(self, log_folder: Path, model: ModelIdentity, folder: ModelFolder, version: str) -> None:
        self.log_folder, self.model, self.folder, self.version = log_folder, model, folder, version
        self._plots = Path(tempfile.mkdtemp(prefix="bird-monitoring-"))
        self._lock = threading.Lock()
        self._shown: tuple[str, list[str | None]] | None = None
        self._computed_at = -math.inf

    def __call__(self) -> tuple[str, list[str | None]]:
        with self._lock:
            if self._shown is None or time.monotonic() - self._computed_at >= DASHBOARD_SECONDS:
                self._shown, self._computed_at = self._compute(), time.monotonic()
            return self._shown

    def _compute(self) -> tuple[str, list[str | None]]:
        try:
            baseline = read_baseline(self.folder)
        except ModelFolderError as error:
            return f"Monitoring is unavailable: {error}", [None] * len(FIGURE_NAMES)
        since = datetime.now(timezone.utc) - timedelta(days=DASHBOARD_DAYS)
        log = read_log(self.log_folder, self.model, baseline, since)
        from bird_model.feedback import read_visitor_reports

        visitors = read_visitor_reports(self.log_folder, self.model, self.folder, since)
        report = build_report(log, baseline, f"{self.version}, last {DASHBOARD_DAYS} days", visitors)
        names = [check.name for check in report.alarms]
        headline = f"**{len(names)} alarm(s): {', '.join(names)}**" if names else "**No alarm**"
        plots: list[str | None] = [str(path) for path in save_figures(report, self._plots)]
        return f"{headline}\n\n```text\n{format_report(report)}\n```", plots


# -- pictures -----------------------------------------------------------------------------

FIGURE_NAMES = ("requests", "classes", "confidence", "outlier_score")


def report_figures(report: Report) -> dict[str, Figure]:
    """One figure per view, drawn on an Agg canvas (no pyplot, no display, thread-safe)."""
    return {
        "requests": _timeline_figure(report),
        "classes": _comparison_figure(report.classes, "Predicted class", "training", rotate=True),
        "confidence": _comparison_figure(report.confidence, "Top confidence", "validation"),
        "outlier_score": _comparison_figure(
            report.outlier, "Outlier score (last bin: unknown)", "validation", rotate=True
        ),
    }


def save_figures(report: Report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in report_figures(report).items():
        paths.append(folder / f"{name}.png")
        figure.savefig(paths[-1], dpi=100)
    return paths


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _timeline_figure(report: Report) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    if report.timeline:
        times, counts = zip(*report.timeline)
        axes.bar(times, counts, width=0.9 * report.bucket / timedelta(days=1), align="edge", color="tab:blue")
        figure.autofmt_xdate()
    axes.set_title(f"Predictions per {_duration(report.bucket)} (UTC)")
    axes.set_ylabel("predictions")
    return figure


def _comparison_figure(comparison: Comparison, title: str, reference: str, rotate: bool = False) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    positions = np.arange(len(comparison.bins))
    baseline = _shares(comparison.baseline, 0.0)
    served = _shares(comparison.served, 0.0) if sum(comparison.served) else np.zeros(len(positions))
    axes.bar(positions - 0.2, baseline, width=0.4, label=reference, color="tab:gray")
    axes.bar(positions + 0.2, served, width=0.4, label="served", color="tab:orange")
    axes.set_xticks(positions, comparison.bins, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    axes.set_ylabel("share")
    axes.set_title(f"{title}: PSI {comparison.psi:.2f}, JS {comparison.js:.2f}")
    axes.legend()
    return figure

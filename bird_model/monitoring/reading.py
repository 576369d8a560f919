"""Reading the prediction log: records counted into a baseline's bins, record by record.

Memory depends on the number of classes and bins (:class:`LogSummary`) and on a bounded
number of time buckets (:class:`Timeline`), never on the length of the log.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bird_model.monitoring.baseline import Baseline, bin_index
from bird_model.logfolder import PREDICTION_GLOB
from bird_model.monitoring.log import ModelIdentity

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
    folder: Path, model: ModelIdentity, baseline: Baseline, since: datetime | None = None
) -> LogSummary:
    """Count the records of ``model`` in ``folder`` into ``baseline``'s bins. Raises ``FileNotFoundError``.

    Files are read a line at a time, and files of days before ``since`` are not opened.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"prediction log folder not found: {folder}")
    classes = baseline.classes
    summary = LogSummary(
        classes, baseline.confidence_edges, baseline.outlier_edges, baseline.low_confidence_threshold
    )
    for line in daily_lines(folder, PREDICTION_GLOB, since):
        record = _parse(line)
        if record is None:
            summary.unreadable += 1
        elif not model.matches(record) or len(record["probabilities"]) != len(classes):
            summary.other_models += 1
        elif since is None or record["time"] >= since:
            summary.add(record)
    return summary


def daily_lines(folder: Path, pattern: str, since: datetime | None = None) -> Iterator[str]:
    """The lines of ``folder``'s daily files (``PREFIX-YYYY-MM-DD.jsonl`` matching ``pattern``),
    oldest day first, one at a time; files of days before ``since`` are not opened."""
    first_day = since.astimezone(timezone.utc).date().isoformat() if since else ""
    prefix = pattern.split("*", 1)[0]
    for path in sorted(folder.glob(pattern)):
        if path.stem.removeprefix(prefix) >= first_day:
            with path.open(encoding="utf-8", errors="replace") as lines:
                yield from lines


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


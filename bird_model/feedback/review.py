"""The operator's review: pending reports listed, then accepted into training data or rejected.

A visitor can report anything, and one flood of wrong labels is enough to teach the model a
mistake (issue #20: 200 "gray parrot" reports turned 44 of 50 macaws into gray parrots). So a
report waits in ``feedback/pending/`` until a person accepts it (moved to ``accepted/``, which
``train.py --data LOG/feedback`` reads) or rejects it (its photo deleted: nothing of a visitor
is kept that we do not need). Every decision is one line in ``feedback/reviews.jsonl``.

A report is named by the first :data:`ID_LENGTH` hex digits of its photo's SHA-256; any
unambiguous prefix of at least :data:`MIN_ID_LENGTH` digits selects it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.logfolder import ACCEPTED_DIR, PENDING_DIR, RECORD_GLOB, REVIEWS_FILE

ID_LENGTH = 10
MIN_ID_LENGTH = 4
"""Shorter prefixes would match half a folder by accident."""


class ReviewError(ValueError):
    """A selection that matches nothing or is ambiguous; the message is one line."""


@dataclass(frozen=True)
class Report:
    """One stored report naming a class, as the review sees it."""

    sha256: str
    reported: str
    path: Path
    answer: str | None = None
    """The model's top class when the visitor reported, from the report's record (None: no record)."""
    time: str | None = None

    @property
    def id(self) -> str:
        return self.sha256[:ID_LENGTH]


def photos_in(tree: Path) -> list[Report]:
    """The reports under ``tree`` (``pending/`` or ``accepted/``): ``CLASS/SHA256.EXT`` files, sorted."""
    if not tree.is_dir():
        return []
    return [
        Report(photo.stem, class_dir.name, photo)
        for class_dir in sorted(path for path in tree.iterdir() if path.is_dir() and not path.name.startswith("."))
        for photo in sorted(class_dir.iterdir())
        if photo.suffix.lower() in SUPPORTED_EXTENSIONS and photo.is_file()
    ]


def pending_reports(log_folder: Path, feedback: Path) -> list[Report]:
    """Pending reports with the model's answer and the time from their records, oldest first."""
    details = _record_details(log_folder)
    reports = [
        Report(photo.sha256, photo.reported, photo.path, *details.get((photo.sha256, photo.reported), (None, None)))
        for photo in photos_in(feedback / PENDING_DIR)
    ]
    return sorted(reports, key=lambda report: (report.time or "", report.reported, report.sha256))


def _record_details(log_folder: Path) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """(sha256, class) → (the model's answer, time) from the feedback records; bad lines are skipped."""
    details: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    for path in sorted(log_folder.glob(RECORD_GLOB)):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    details[(record["sha256"], record["reported"])] = (record.get("answer"), record.get("time"))
                except (ValueError, KeyError, TypeError):
                    continue
    return details


def select(reports: list[Report], ids: list[str], reported: str | None, everything: bool) -> list[Report]:
    """The reports named by id prefixes, by class, or all of them; raises :class:`ReviewError`."""
    if everything:
        chosen = reports
    elif reported is not None:
        chosen = [report for report in reports if report.reported == reported]
        if not chosen:
            present = ", ".join(sorted({f"'{report.reported}'" for report in reports})) or "none"
            raise ReviewError(f"No pending report of the class '{reported}'; pending classes: {present}.")
    else:
        chosen = [_by_id(reports, prefix) for prefix in ids]
    if not chosen:
        raise ReviewError("No report is pending review.")
    return list(dict.fromkeys(chosen))


def _by_id(reports: list[Report], prefix: str) -> Report:
    wanted = prefix.lower()
    if len(wanted) < MIN_ID_LENGTH or any(char not in "0123456789abcdef" for char in wanted):
        raise ReviewError(f"{prefix!r} is not a report id: give at least {MIN_ID_LENGTH} hex digits, as `list` shows.")
    matches = [report for report in reports if report.sha256.startswith(wanted)]
    if not matches:
        raise ReviewError(f"No pending report has the id {wanted}; `list` shows the pending ones.")
    if len(matches) > 1:
        candidates = ", ".join(f"{report.sha256[:ID_LENGTH + 2]} ({report.reported})" for report in matches[:10])
        raise ReviewError(f"The id {wanted} is ambiguous: {candidates}; give more digits.")
    return matches[0]


def accept(feedback: Path, reports: Iterable[Report]) -> Counter[str]:
    """Move each report's photo into ``accepted/CLASS/``, where training reads it; the counts per class."""
    accepted: Counter[str] = Counter()
    for report in reports:
        target = feedback / ACCEPTED_DIR / report.reported / report.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(report.path, target)
        _log_decision(feedback, report, "accepted")
        accepted[report.reported] += 1
    return accepted


def reject(feedback: Path, reports: Iterable[Report]) -> Counter[str]:
    """Delete each report's photo (the decision stays in the reviews file); the counts per class."""
    rejected: Counter[str] = Counter()
    for report in reports:
        report.path.unlink(missing_ok=True)
        _log_decision(feedback, report, "rejected")
        rejected[report.reported] += 1
    return rejected


def _log_decision(feedback: Path, report: Report, decision: str) -> None:
    line = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "id": report.id,
        "sha256": report.sha256,
        "class": report.reported,
        "decision": decision,
    }
    with (feedback / REVIEWS_FILE).open("a", encoding="utf-8") as log:
        log.write(json.dumps(line, ensure_ascii=False) + "\n")


def per_class(reports: Iterable[Report]) -> Counter[str]:
    return Counter(report.reported for report in reports)


def describe_counts(counts: Counter[str]) -> str:
    """``macaw 3, gray parrot 1``: the most first."""
    return ", ".join(f"{name} {count}" for name, count in counts.most_common())

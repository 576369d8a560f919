"""Visitors' corrections: stored as a folder-per-class dataset that training reads back, and counted.

After an answer a visitor can say it was right, name the right class, or say "none of these";
API callers send a photo and a class name. Each report is checked like a prediction (the
class must be one of the model's, the photo must pass our decoder) and kept in the
prediction log folder, so the log's Hub mirror carries it too::

    LOG_FOLDER/
      feedback/CLASS/SHA256.EXT        a folder-per-class dataset: train.py --data LOG_FOLDER/feedback
      feedback-none-of-these/SHA256.EXT  "none of these": outside feedback/, so never read as a class
      feedback-YYYY-MM-DD.jsonl        one record per stored report (UTC day), see :func:`feedback_record`

A file is named by its content hash and the format our decoder found in it, never by the
visitor's file name, and lands in the folder named exactly by the class, so training reads
the same label back. The same photo reported as the same class is stored (and counted) once.

This module imports no Gradio: the monitor command reads the records with it. The page's
flag buttons and the ``/feedback`` endpoint are wired in :mod:`bird_model.web`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bird_model.formats import extension_for
from bird_model.images import read_header
from bird_model.monitoring.log import ModelIdentity
from bird_model.monitoring.reading import daily_lines, parse_time
from bird_model.monitoring.report import TOP_CLASSES, Check

if TYPE_CHECKING:
    from bird_model.artifacts import ModelFolder
    from bird_model.images import Header
    from bird_model.inference import Classifier, Prediction

SCHEMA_VERSION = 1
NONE_OF_THESE = "none of these"
"""What a visitor (or API caller) says of a photo that shows none of the model's classes."""
FEEDBACK_DIR = "feedback"
NONE_DIR = "feedback-none-of-these"
"""Beside ``feedback/``, not in it: training on ``feedback/`` must not learn a class "none of these".
The photos are candidates for calibrating the "not one of my birds" threshold."""
RECORD_GLOB = "feedback-*.jsonl"
MIRROR_PATTERNS = (RECORD_GLOB, f"{FEEDBACK_DIR}/*", f"{NONE_DIR}/*")
"""What the log's Hub mirror uploads besides the prediction log (``*`` spans folders there)."""

MAX_FILES = 10_000
MAX_BYTES = 1 << 30
"""What one app process stores at most before refusing feedback, with a message, until it restarts.

Every report may store one upload (capped at 25 MB by app.py), so a stranger could otherwise
fill the disk: 1 GiB is about 5,000 phone photos, and 10,000 files bounds what the mirror
commits when the photos are tiny. Identical photo and class are stored once, so repeating a
report costs nothing."""
DECODES_AT_ONCE = 2
"""Feedback photos checked at once. The page's flag buttons run outside Gradio's queue, so this,
not the queue's concurrency limit, bounds the decoding memory they can take."""

VISITOR_MIN_REPORTS = 30
VISITOR_ACCURACY_MARGIN = 0.15
"""The visitor-accuracy check alarms when, on at least VISITOR_MIN_REPORTS reports naming a class,
the model's top class matches the visitor's on fewer than validation accuracy minus 15 points.
At 30 reports and a true accuracy of 90%, sampling noise alone is 5.5 points (one standard
deviation), so 15 points is about 2.7 of them. Visitors correct mistakes more readily than they
confirm right answers, so the reported accuracy runs below validation even when nothing has
changed: the margin is wide on purpose, and a real drop still crosses it."""


class FeedbackError(ValueError):
    """A report that cannot be stored; the message is fit to show the visitor as is."""


def folder_name_problem(name: str) -> str | None:
    """Why a class name cannot be a folder that training reads back as that same label, or None.

    Class names come from the model's ``labels.json`` (the operator's), and training takes a
    folder's name as its label, so the name is used as is or not at all: a sanitised name
    would come back as another class.
    """
    if not name or name in (".", ".."):
        return "it is empty, '.' or '..'"
    if "/" in name or "\\" in name or "\x00" in name:
        return "it holds a path separator or NUL"
    if name.startswith("."):
        return "training skips hidden folders (names starting with '.')"
    if len(name.encode("utf-8")) > 200:
        return "it is too long for a folder name"
    return None


@dataclass(frozen=True)
class Receipt:
    reported: str
    """The class stored, or :data:`NONE_OF_THESE`."""
    image: str
    """Where the photo is, relative to the log folder."""
    new: bool
    """False when the same photo was already stored under the same class."""


def feedback_record(
    reported: str,
    prediction: Prediction,
    header: Header,
    sha256: str,
    image: str,
    model: ModelIdentity,
    via: str,
    when: datetime,
) -> dict[str, Any]:
    """One JSON line: what the visitor said (``reported``) beside the model's answer for the same photo.

    ``answer`` is the model's top class and ``unknown`` its "not one of my birds" verdict, computed
    again on the stored photo rather than taken from the caller, who could send anything.
    ``via`` is ``"page"`` (a flag button) or ``"api"`` (``/feedback``).
    """
    return {
        "schema": SCHEMA_VERSION,
        "time": when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **model.fields(),
        "reported": reported,
        "answer": prediction.label,
        "confidence": prediction.confidence,
        "outlier_score": prediction.outlier_score,
        "unknown": prediction.unknown,
        "via": via,
        "width": header.width,
        "height": header.height,
        "format": header.format,
        "sha256": sha256,
        "image": image,
    }


class FeedbackStore:
    """Checks and stores reports for one served model; thread-safe, writes before it returns.

    A report is on disk (photo renamed into place, then its record appended and fsynced) when
    :meth:`report` returns, so a visitor who was thanked can count on it, and a crash never
    leaves a half-written photo under a hash name.
    """

    def __init__(
        self,
        folder: Path,
        model: ModelIdentity,
        classifier: Classifier,
        max_files: int = MAX_FILES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.folder, self.model, self.classifier = folder, model, classifier
        self.max_files, self.max_bytes = max_files, max_bytes
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(DECODES_AT_ONCE)

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    @property
    def storable(self) -> list[str]:
        """The classes a visitor can report (see :func:`folder_name_problem`), in the model's order."""
        return [name for name in self.classes if folder_name_problem(name) is None]

    def check_choice(self, reported: str | None) -> None:
        """Refuses anything but a storable class of the model or :data:`NONE_OF_THESE`.

        Runs before the photo is read, and never echoes what was sent: it is a stranger's text.
        """
        if not isinstance(reported, str) or (reported not in self.classes and reported != NONE_OF_THESE):
            raise FeedbackError(f"Unknown class: choose one of {_quoted(self.storable)} or '{NONE_OF_THESE}'.")
        if reported in self.classes and (problem := folder_name_problem(reported)):
            raise FeedbackError(f"Feedback for the class '{reported}' cannot be stored: {problem}.")

    def report(self, photo: str | Path | None, reported: str | None, via: str, right: bool = False) -> Receipt:
        """Store ``photo`` as ``reported`` (a class or :data:`NONE_OF_THESE`).

        ``right=True`` stores it as the model's own answer instead (the page's "Right" button):
        its top class, or "none of these" where the page said unknown. Raises
        :class:`FeedbackError` for a bad choice or a full store, and ``ImageError`` (with the
        message ``/predict`` gives) for a file that is not a usable photo.
        """
        if photo is None:
            raise FeedbackError("No photo received: upload the photo you are giving feedback on.")
        if not right:
            self.check_choice(reported)
        upload = Path(photo).read_bytes()
        with self._decoding:
            prediction = self.classifier.classify(upload)
            header = read_header(upload)
        if right or reported is None:
            reported = NONE_OF_THESE if prediction.unknown else prediction.label
            self.check_choice(reported)
        sha256 = hashlib.sha256(upload).hexdigest()
        where = f"{FEEDBACK_DIR}/{reported}" if reported in self.classes else NONE_DIR
        relative = f"{where}/{sha256}{extension_for(header.format)}"
        target = self.folder / relative
        with self._lock:
            if target.exists():
                return Receipt(reported, relative, new=False)
            if self.files + 1 > self.max_files or self.bytes + len(upload) > self.max_bytes:
                raise FeedbackError(
                    "Thank you, but this demo has stored all the feedback it may until it restarts; "
                    "your photo was not kept."
                )
            when = datetime.now(timezone.utc)
            record = feedback_record(reported, prediction, header, sha256, relative, self.model, via, when)
            try:
                self._write(target, upload, record)
            except OSError as error:
                print(f"Feedback: cannot write to {self.folder} ({error}); a report was refused.")
                raise FeedbackError("Your feedback could not be stored just now; please try again later.") from error
            self.files += 1
            self.bytes += len(upload)
        return Receipt(reported, relative, new=True)

    def _write(self, target: Path, upload: bytes, record: dict[str, Any]) -> None:
        """The photo first, written aside and renamed into place, then its record.

        The file being written sits in the log folder under a hidden name that neither the
        mirror's patterns nor training read, so a crash can leave no partial photo behind.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".feedback-incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(upload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        with (self.folder / f"feedback-{record['time'][:10]}.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
            log.flush()
            os.fsync(log.fileno())


QUOTED_UP_TO = 12
"""Class names an error message lists; beyond, it names the first ones and counts the rest (500 would bury it)."""


def _quoted(names: list[str]) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:QUOTED_UP_TO])
    return shown if len(names) <= QUOTED_UP_TO else f"{shown} and {len(names) - QUOTED_UP_TO} more classes"


# -- what visitors report, for the monitoring report ------------------------------------------


@dataclass
class VisitorReports:
    """Visitors' reports on one model, counted record by record (memory bounded by the classes).

    Accuracy is over the reports that name one of the model's classes: the share where the
    model's top class is that class, as validation accuracy is computed. "None of these"
    reports are counted apart, with how many of them the model had called unknown.
    """

    classes: list[str]
    validation_accuracy: float
    right: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    none_of_these: int = 0
    none_called_unknown: int = 0
    other_models: int = 0
    unreadable: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        reported = record["reported"]
        if reported in self.classes:
            (self.right if record["answer"] == reported else self.wrong)[reported] += 1
        elif reported == NONE_OF_THESE:
            self.none_of_these += 1
            self.none_called_unknown += bool(record.get("unknown"))
        else:
            self.unreadable += 1

    @property
    def class_reports(self) -> int:
        return sum(self.right.values()) + sum(self.wrong.values())

    @property
    def count(self) -> int:
        return self.class_reports + self.none_of_these

    @property
    def accuracy(self) -> float:
        return sum(self.right.values()) / self.class_reports if self.class_reports else math.nan

    def check(self) -> Check:
        limit = self.validation_accuracy - VISITOR_ACCURACY_MARGIN
        statistics = (
            f"{self.accuracy:.1%} on {self.class_reports} reports vs validation {self.validation_accuracy:.1%} "
            f"(alarm under {limit:.1%} = {VISITOR_ACCURACY_MARGIN * 100:.0f} points below, "
            f"on at least {VISITOR_MIN_REPORTS} reports)"
            if self.class_reports else f"no report naming a class yet; the check needs {VISITOR_MIN_REPORTS}"
        )
        finding = (
            f"Visitors say the model is right {self.accuracy:.0%} of the time; validation promised "
            f"{self.validation_accuracy:.0%}" if self.class_reports else "no visitor has reported a class yet"
        )
        check = Check("visitor accuracy", self.class_reports > 0 and self.accuracy < limit, statistics, finding)
        if self.class_reports < VISITOR_MIN_REPORTS:
            return check.waiting(self.class_reports, VISITOR_MIN_REPORTS)
        return check

    def lines(self) -> list[str]:
        right, wrong = sum(self.right.values()), sum(self.wrong.values())
        accuracy = f"{self.accuracy:.1%}" if self.class_reports else "n/a"
        lines = [
            f"Visitor reports: {self.count} (right {right}, wrong {wrong}, {NONE_OF_THESE} {self.none_of_these}); "
            f"accuracy {accuracy} vs validation {self.validation_accuracy:.1%}"
        ]
        if self.count == 0:
            return lines
        names, rest = self.classes, []
        if len(names) > TOP_CLASSES + 2:  # many classes: the most corrected first, the rest in one line
            reported = sorted((name for name in names if self.right[name] + self.wrong[name]),
                              key=lambda name: (-self.wrong[name], -self.right[name]))
            names, rest = reported[:TOP_CLASSES], reported[TOP_CLASSES:]
        others = f"{len(rest)} other classes"
        width = max(len(name) for name in [*names, NONE_OF_THESE, *([others] if rest else [])])
        for name in names:
            right, wrong = self.right[name], self.wrong[name]
            lines.append(f"  {name:<{width}}  {right + wrong:5d} reports  right {right:5d}  wrong {wrong:5d}")
        if rest:
            right, wrong = sum(self.right[name] for name in rest), sum(self.wrong[name] for name in rest)
            lines.append(f"  {others:<{width}}  {right + wrong:5d} reports  "
                         f"right {right:5d}  wrong {wrong:5d}")
        lines.append(
            f"  {NONE_OF_THESE:<{width}}  {self.none_of_these:5d} reports  "
            f"the model had said unknown for {self.none_called_unknown}"
        )
        return lines


def read_visitor_reports(
    folder: Path, model: ModelIdentity, model_folder: ModelFolder, since: datetime | None = None
) -> VisitorReports:
    """Count ``model``'s feedback records in the log ``folder``, a line at a time, beside the
    validation accuracy of ``model_folder`` (the served model's). No record is no error."""
    reports = VisitorReports(model_folder.classes, model_folder.metrics.validation.accuracy)
    for line in daily_lines(folder, RECORD_GLOB, since):
        try:
            record = json.loads(line)
            moment = parse_time(record["time"])
        except (ValueError, KeyError, TypeError):
            record, moment = None, None
        if record is None or not all(isinstance(record.get(key), str) for key in ("reported", "answer")):
            reports.unreadable += 1
            continue
        if not model.matches(record):
            reports.other_models += 1
        elif since is None or moment >= since:
            reports.add(record)
    return reports

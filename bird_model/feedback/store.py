"""Storing visitors' reports: checked, bounded per caller and in total, quarantined as pending.

After an answer a visitor can say it was right, name the right class, or say "none of these";
API callers send a photo and a class name. The web side (:mod:`bird_model.web`) ties each
report to the answer it served for that photo and hands both here; the store checks the class,
limits what one caller and the disk can take, and keeps the photo in the log folder
(:mod:`bird_model.logfolder` draws the layout) as a *pending* report, which training does not
read until the operator accepts it (:mod:`bird_model.feedback.review`).

A file is named by its content hash and the format our decoder found in it, never by the
visitor's file name, and lands in the folder named exactly by the class, so training reads
the same label back. The same photo reported as the same class is stored (and counted) once.

This module imports no Gradio and no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.images import clean_copy, read_header
from bird_model.logfolder import (
    ACCEPTED_DIR,
    FEEDBACK_DIR,
    LEGACY_NONE_DIR,
    MARKER,
    NONE_DIR,
    NONE_OF_THESE,
    PENDING_DIR,
    record_file,
)
from bird_model.monitoring.log import ModelIdentity
from bird_model.settings import FeedbackSettings

if TYPE_CHECKING:
    from bird_model.images import Header
    from bird_model.inference import Prediction

SCHEMA_VERSION = 1
HOUR_SECONDS = 3600.0


class FeedbackError(ValueError):
    """A report that cannot be stored; the message is one line fit to show the visitor as is.

    ``reason`` names a refusal the page says in the visitor's language (its text table's
    ``refused_REASON``, filled with ``values``); the message is the English of it.
    """

    def __init__(self, message: str, reason: str | None = None, **values: object) -> None:
        super().__init__(message)
        self.reason, self.values = reason, values


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
    answer: Prediction,
    header: Header,
    sha256: str,
    image: str,
    model: ModelIdentity,
    via: str,
    when: datetime,
) -> dict[str, Any]:
    """One JSON line: what the visitor said (``reported``) beside the answer the demo served for the photo.

    ``answer`` is the model's top class and ``unknown`` its "not one of my birds" verdict, as the
    web side served them (it keeps its own answers; the caller's word is never taken for them).
    ``via`` is ``"page"`` or ``"api"``. The caller (client address) is never written.
    """
    return {
        "schema": SCHEMA_VERSION,
        "time": when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **model.fields(),
        "reported": reported,
        "answer": answer.label,
        "confidence": answer.confidence,
        "outlier_score": answer.outlier_score,
        "unknown": answer.unknown,
        "via": via,
        "width": header.width,
        "height": header.height,
        "format": header.format,
        "sha256": sha256,
        "image": image,
    }


def open_feedback_folder(log_folder: Path) -> Path:
    """The log folder's ``feedback/``, brought to the current layout if an older one is there.

    Before the review step ``feedback/CLASS/`` held the reports themselves and "none of these"
    sat in ``feedback-none-of-these/``: those move into ``pending/`` and ``none-of-these/``
    (nothing is lost, nothing reaches training unreviewed). The marker is written last, so a
    move interrupted by a crash is finished the next time. Nothing is created while no report
    exists: an app nobody corrects adds nothing to its log folder or its mirror.
    """
    feedback = log_folder / FEEDBACK_DIR
    old = feedback.is_dir() or (log_folder / LEGACY_NONE_DIR).is_dir() or (log_folder / _ASIDE).is_dir()
    if old and not (feedback / MARKER).is_file():
        _move_legacy_reports(log_folder)
        mark(feedback)
    return feedback


def mark(feedback: Path) -> None:
    """Create ``feedback/`` with its marker, which tells the data reader to train on ``accepted/`` only.

    Written before any photo, so no copy of the folder (a mirror's) holds reports without it."""
    feedback.mkdir(parents=True, exist_ok=True)
    (feedback / MARKER).touch()


_ASIDE = ".feedback-before-review"


def _move_legacy_reports(log_folder: Path) -> None:
    """``feedback/CLASS/*`` → ``feedback/pending/CLASS/*``, ``feedback-none-of-these/*`` → ``feedback/none-of-these/*``.

    The old ``feedback/`` is renamed aside first: a class may itself be called ``pending``.
    """
    feedback, aside = log_folder / FEEDBACK_DIR, log_folder / _ASIDE
    if feedback.is_dir() and not aside.exists():
        feedback.rename(aside)
    aside.mkdir(exist_ok=True)
    for class_dir in sorted(path for path in aside.iterdir() if path.is_dir()):
        target = feedback / PENDING_DIR / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for photo in class_dir.iterdir():
            os.replace(photo, target / photo.name)
        class_dir.rmdir()
    for leftover in aside.iterdir():  # loose files were never read as reports; keep them, visibly
        feedback.mkdir(exist_ok=True)
        os.replace(leftover, feedback / leftover.name)
    aside.rmdir()
    legacy_none = log_folder / LEGACY_NONE_DIR
    if legacy_none.is_dir():
        (feedback / NONE_DIR).mkdir(parents=True, exist_ok=True)
        for photo in legacy_none.iterdir():
            os.replace(photo, feedback / NONE_DIR / photo.name)
        legacy_none.rmdir()
    print(f"Feedback: moved the reports stored before the review step into {feedback / PENDING_DIR}; "
          f"review them with: python -m bird_model.feedback list")


def stored_bytes(feedback: Path) -> int:
    """What the feedback photos take on disk: every photo under ``feedback/``, whatever its state."""
    return sum(path.stat().st_size for path in feedback.rglob("*")
               if path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file())


class FeedbackStore:
    """Checks and stores reports for one served model; thread-safe, writes before it returns.

    A report is on disk (photo renamed into place, then its record appended and fsynced) when
    :meth:`report` returns, so a visitor who was thanked can count on it, and a crash never
    leaves a half-written photo under a hash name.

    Three bounds hold whatever callers send: at most ``settings.per_hour`` stored reports per
    caller in any hour (in memory only: the caller is never written), at most
    ``settings.per_minute`` from everyone together in any minute, checked before the photo is
    decoded (a flood from many addresses costs little), and at most
    ``settings.max_mb`` of feedback photos on disk, counted from the disk when the store opens,
    so a restart does not reset it.
    """

    def __init__(self, folder: Path, model: ModelIdentity, classes: list[str], settings: FeedbackSettings) -> None:
        self.folder, self.model, self.classes, self.settings = folder, model, classes, settings
        self.feedback = open_feedback_folder(folder)
        self.bytes = stored_bytes(self.feedback)
        self._lock = threading.Lock()
        self._recent: dict[str, deque[tuple[float, str]]] = {}
        """Per caller, (monotonic time, photo sha256) of the reports it stored in the last hour."""
        self._last_minute: deque[float] = deque()
        """Monotonic times of the reports stored by anyone in the last minute."""

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

    def report(self, upload: bytes, reported: str, *, answer: Prediction, caller: str, via: str) -> Receipt:
        """Store ``upload`` as ``reported`` (a class or :data:`NONE_OF_THESE`), pending review.

        ``answer`` is the prediction the web side served for this photo; ``caller`` an opaque key
        for the client (its address). Raises :class:`FeedbackError` for a bad choice, a caller
        over its hourly limit or a full store, and ``ImageError`` for a file that is not a photo.
        """
        self.check_choice(reported)
        header = read_header(upload)
        sha256 = hashlib.sha256(upload).hexdigest()  # the upload's identity, as in the prediction log
        with self._lock:
            if (kept := self._already_kept(reported, sha256)) is not None:
                return Receipt(reported, kept, new=False)
            now = time.monotonic()
            recent = self._recent_reports(caller, now)
            counted = any(seen == sha256 for _, seen in recent)
            if not counted and len(recent) >= self.settings.per_hour:
                raise FeedbackError(
                    f"Thank you, but this demo keeps at most {self.settings.per_hour} of one visitor's reports an "
                    f"hour; your photo was not kept. Please try again later.", "per_hour", count=self.settings.per_hour
                )
            while self._last_minute and now - self._last_minute[0] > 60:
                self._last_minute.popleft()
            if len(self._last_minute) >= self.settings.per_minute:
                raise FeedbackError(
                    "Thank you, but this demo is receiving many reports just now; your photo was not kept. "
                    "Please try again in a minute.", "busy"
                )
            photo, extension = _photo_bytes(upload)
            relative = self._place(reported, f"{sha256}{extension}")
            target = self.folder / relative
            if self.bytes + len(photo) > self.settings.max_bytes:
                raise FeedbackError(
                    "Thank you, but this demo has stored all the feedback photos it may; your photo was not kept.",
                    "full",
                )
            when = datetime.now(timezone.utc)
            record = feedback_record(reported, answer, header, sha256, relative, self.model, via, when)
            try:
                self._write(target, photo, record)
            except OSError as error:
                print(f"Feedback: cannot write to {self.folder} ({error}); a report was refused.")
                raise FeedbackError("Your feedback could not be stored just now; please try again later.",
                                    "not_stored") from error
            self.bytes += len(photo)
            self._last_minute.append(now)
            if not counted:
                recent.append((now, sha256))
        return Receipt(reported, relative, new=True)

    def _place(self, reported: str, name: str) -> str:
        """Where a new report goes, relative to the log folder: pending under its class, or none-of-these."""
        if reported == NONE_OF_THESE:
            return f"{FEEDBACK_DIR}/{NONE_DIR}/{name}"
        return f"{FEEDBACK_DIR}/{PENDING_DIR}/{reported}/{name}"

    def _already_kept(self, reported: str, sha256: str) -> str | None:
        """Where this photo is kept under this class already (pending or accepted), relative to the
        log folder; None if it is not: the same photo and class are stored and counted once."""
        place = Path(self._place(reported, sha256))
        folders = [self.folder / place.parent]
        if reported != NONE_OF_THESE:
            folders.append(self.feedback / ACCEPTED_DIR / reported)
        for folder in folders:
            for path in folder.glob(f"{sha256}.*"):
                return path.relative_to(self.folder).as_posix()
        return None

    def _recent_reports(self, caller: str, now: float) -> deque[tuple[float, str]]:
        """The caller's reports of the last hour; callers with none are forgotten, so memory stays
        bounded by the callers of one hour times ``per_hour``."""
        for key in list(self._recent):
            entries = self._recent[key]
            while entries and now - entries[0][0] > HOUR_SECONDS:
                entries.popleft()
            if not entries and key != caller:
                del self._recent[key]
        return self._recent.setdefault(caller, deque())

    def _write(self, target: Path, photo: bytes, record: dict[str, Any]) -> None:
        """The photo first, written aside and renamed into place, then its record.

        The file being written sits in the log folder under a hidden name that neither the
        mirror's patterns nor training read, so a crash can leave no partial photo behind.
        """
        mark(self.feedback)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".feedback-incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(photo)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        with (self.folder / record_file(record["time"][:10])).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
            log.flush()
            os.fsync(log.fileno())


def _photo_bytes(upload: bytes) -> tuple[bytes, str]:
    """The one place that decides what of an upload is kept, and its file extension: its pixels
    alone, re-encoded (:func:`bird_model.images.clean_copy`: no EXIF, GPS, XMP, ICC or comments)."""
    return clean_copy(upload)


QUOTED_UP_TO = 12
"""Class names an error message lists; beyond, it names the first ones and counts the rest (500 would bury it)."""


def _quoted(names: list[str]) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:QUOTED_UP_TO])
    return shown if len(names) <= QUOTED_UP_TO else f"{shown} and {len(names) - QUOTED_UP_TO} more classes"

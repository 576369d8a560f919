"""Writing the prediction log: one JSON line per served prediction, from a background thread.

A request only pays for reading and hashing its upload and a queue put; JSON encoding,
writing, fsync and saving photos happen in the writer thread. Optionally the folder is
mirrored to a Hub dataset repo (through :mod:`bird_model.hub`), because a Space's disk is
wiped at every restart.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bird_model.images import ImageError, clean_copy, read_header
from bird_model.logfolder import IMAGES_DIR, MIRROR_PATTERNS, prediction_file
from bird_model.settings import ServedModel, positive_number

if TYPE_CHECKING:
    from huggingface_hub import CommitScheduler

    from bird_model.hub import FetchedModel
    from bird_model.inference import Prediction

SCHEMA_VERSION = 1
FLUSH_SECONDS = 1.0
"""Longest a record waits in memory: a crash (SIGKILL, power loss) loses at most this much."""


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
            from bird_model.hub import final_push

            final_push(self.mirror)

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
            self._file = (self.folder / prediction_file(day)).open("a", encoding="utf-8")
            self._day = day
        if entry.image is not None:
            entry.record["image"] = self._save_image(entry.image, entry.record["sha256"])
        self._file.write(json.dumps(entry.record, ensure_ascii=False) + "\n")

    def _save_image(self, upload: bytes, sha256: str) -> str | None:
        """The upload's pixels alone (:func:`~bird_model.images.clean_copy`: no EXIF, GPS, XMP
        or ICC), named by the upload's hash: a visitor's file name (too long for the disk, or
        ending in ``.html``) must neither lose the record nor choose what is stored. ``None``
        if the photo cannot be re-encoded (it was answered, so only memory can run out)."""
        try:
            data, extension = clean_copy(upload)
        except ImageError:
            return None
        relative = f"{IMAGES_DIR}/{sha256}{extension}"
        target = self.folder / relative
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
        return relative

    def _flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())


@dataclass(frozen=True)
class LogSettings:
    """``BIRD_LOG_DIR``, ``BIRD_LOG_IMAGES``, ``BIRD_LOG_REPO``, ``BIRD_LOG_EVERY``; see docs/settings.md."""

    folder: Path = ServedModel.log_dir
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
        minutes = positive_number(environ, "BIRD_LOG_EVERY", cls.every_minutes, "minutes")
        return cls(
            folder=ServedModel.from_environment(environ).log_dir,
            keep_images=environ.get("BIRD_LOG_IMAGES", "").lower() in {"1", "true", "yes"},
            repo=repo,
            every_minutes=minutes,
        )


def open_log(settings: LogSettings, model: ModelIdentity, classes: list[str], token: str | None) -> PredictionLog:
    """The app's log; a mirror that cannot start is reported and skipped, serving goes on."""
    mirror = None
    if settings.repo is not None:
        from bird_model.hub import HubError

        try:
            mirror = start_mirror(settings.repo, settings.folder, settings.every_minutes, token)
        except HubError as error:
            print(f"Prediction log: {error} Logging locally only, to {settings.folder}.")
    return PredictionLog(settings.folder, model, classes, settings.keep_images, mirror)


def start_mirror(repo: str, folder: Path, every_minutes: float, token: str | None) -> CommitScheduler:
    """A private dataset repo (created if missing) receiving the log folder every few minutes:
    the prediction log, its images and visitors' feedback (:data:`bird_model.logfolder.MIRROR_PATTERNS`)."""
    from bird_model import hub

    return hub.start_mirror(repo, folder, every_minutes, token, patterns=list(MIRROR_PATTERNS))

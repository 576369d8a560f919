"""The prediction itself, as the page and the API serve it, and the recent answers it leaves behind.

:meth:`Predictor.predict` is the one place a served photo becomes an answer: read the upload,
one forward pass (:meth:`bird_model.inference.Classifier.explain`), remember the answer for
the caller who asked (a correction must refer to it: :mod:`bird_model.web.feedback`), log it,
and put it in words (:func:`answer`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from bird_model.images import ImageError
from bird_model.inference import Classifier, Prediction
from bird_model.web.text import LANGUAGES, say, say_refusal

CLASSIFIER_SLOTS = "classifier"
"""The concurrency id of the events that answer with the model (predict, explain, the page's
Submit): they share the queue's slots (app.py's ``CONCURRENCY_LIMIT``), so no mix of calls
decodes more photos at once than it allows."""
FEEDBACK_SLOTS = "feedback"
"""Corrections have a queue of their own, one at a time: Gradio's queue serves each
concurrency id apart, so a flood of reports waits behind itself, never in front of a
prediction, and takes at most one core and one photo's decoding memory."""
FEEDBACK_AT_ONCE = 1
DIGITS = 4
"""Decimals of the answer's scores: a 0.01% step, finer than any difference that means something."""


def unknown_verdict(class_count: int) -> str:
    """The headline for a photo unlike every class: short, and never a list of the classes
    (500 names would fill the panel; the bars under it name the nearest ones)."""
    return f"Not one of the {class_count} birds I know"


def answer(prediction: Prediction, top_k: int, unknown_label: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``/predict``'s two outputs: the label panel (top ``k`` scores) and the machine-readable verdict."""
    confidences = [{"label": name, "confidence": round(score, DIGITS)}
                   for name, score in list(prediction.scores.items())[:top_k]]
    outlier_score = prediction.outlier_score
    details = {
        "verdict": "unknown" if prediction.unknown else "known",
        "label": prediction.label,
        "confidence": round(prediction.confidence, DIGITS),
        "outlier_score": round(outlier_score, DIGITS) if outlier_score is not None else None,
        "model": version,
    }
    label = unknown_label if prediction.unknown else prediction.label
    return {"label": label, "confidences": confidences}, details


def caller_of(request: gr.Request | None) -> str:
    """Who is asking, as far as limits per caller go: the client's address.

    On a Hugging Face Space every request arrives through the Space's proxy, which puts the
    visitor's address first in ``X-Forwarded-For``; elsewhere that header is whatever the
    caller wrote, so only the connection's own address counts.
    """
    if request is None:
        return "local"
    forwarded = request.headers.get("x-forwarded-for", "") if os.environ.get("SPACE_ID") else ""
    if forwarded.split(",")[0].strip():
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client is not None else "unknown"


ANSWER_SECONDS = 3600
"""How long a visitor can correct an answer: an hour covers any visit to the page."""
ANSWERS_KEPT = 4096
"""Answers remembered at most (a few hundred bytes each), so a flood of predictions bounds the memory."""


class RecentAnswers:
    """The answers served in the last hour, by caller and photo, for the corrections that refer to them.

    A correction is about an answer the visitor saw: without this, anyone could file a photo under
    any class without ever asking the model, and the page could store a label for a photo nobody
    had classified. Keyed by the upload's content hash, so the same photo sent again finds it.
    """

    def __init__(self, size: int = ANSWERS_KEPT, seconds: float = ANSWER_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.seconds, self.clock = size, seconds, clock
        self._answers: OrderedDict[tuple[str, str], tuple[float, Prediction]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, caller: str, sha256: str, prediction: Prediction) -> None:
        with self._lock:
            self._answers[caller, sha256] = (self.clock(), prediction)
            self._answers.move_to_end((caller, sha256))
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def find(self, caller: str, sha256: str) -> Prediction | None:
        with self._lock:
            kept = self._answers.get((caller, sha256))
        if kept is None or self.clock() - kept[0] > self.seconds:
            return None
        return kept[1]


@dataclass(frozen=True)
class About:
    """Which model the page serves, as its footer and ``/info`` say it: never a local path."""

    model: str
    """The Hub repo id, or the model's name for a local folder."""
    revision: str | None
    """The commit served from the Hub; None for a local folder."""
    tag: str | None
    """A tag of the repo that points at that commit (the release that was promoted), if any."""
    version: str
    """The short form every answer carries: ``OWNER/NAME@abc1234``, or the local model's name and date."""

    def info(self, classifier: Classifier) -> dict[str, Any]:
        """``/info``: the model, its revision and tag, its classes, the page's languages, the unknown threshold."""
        detector = classifier.detector
        return {"model": self.model, "revision": self.revision, "tag": self.tag, "classes": list(classifier.classes),
                "languages": list(LANGUAGES),
                "unknown_threshold": round(float(detector.threshold), DIGITS) if detector is not None else None}


@dataclass(frozen=True)
class Answered:
    """One served answer: the prediction, its overlay, and the two ``/predict`` outputs."""

    prediction: Prediction
    overlay: Image.Image | None
    label: dict[str, Any]
    details: dict[str, Any]


class Predictor:
    """A photo in, an :class:`Answered` out, for the page and the API alike.

    ``on_prediction`` sees every served prediction (not refused files) before its answer is
    sent, so a caller that got an answer can count on it being recorded.
    """

    def __init__(self, classifier: Classifier, top_k: int, version: str,
                 on_prediction: Callable[[str, Prediction], None] | None = None) -> None:
        self.classifier, self.version, self.on_prediction = classifier, version, on_prediction
        self.top_k = max(1, min(top_k, len(classifier.classes)))
        self.unknown_label = unknown_verdict(len(classifier.classes))
        self.answers = RecentAnswers()

    def predict(self, photo: str | None, caller: str, language: str = LANGUAGES[0],
                view_side: int | None = None) -> Answered:
        """The answer, with the overlay drawn over the photo as uploaded when ``view_side`` is given
        (the page's), else over the model's square input (``/explain``'s). Raises ``gr.Error`` with
        a one-line message for a missing or unusable photo."""
        if photo is None:
            raise gr.Error(say(language, "no_photo"), print_exception=False)
        upload = Path(photo).read_bytes()
        try:
            explained = self.classifier.explain(upload, view_side)
        except ImageError as error:
            raise gr.Error(say_refusal(error, language), print_exception=False) from error
        prediction = explained.prediction
        self.answers.keep(caller, hashlib.sha256(upload).hexdigest(), prediction)
        if self.on_prediction is not None:
            self.on_prediction(photo, prediction)
        label, details = answer(prediction, self.top_k, self.unknown_label, self.version)
        return Answered(prediction, explained.overlay, label, details)

    def api(self, photo: str | None, request: gr.Request) -> tuple[dict[str, Any], dict[str, Any]]:
        """``/predict``: ``(label, details)``, see README.md, "The API"."""
        answered = self.predict(photo, caller_of(request))
        return answered.label, answered.details

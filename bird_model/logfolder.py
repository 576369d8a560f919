"""The log folder's layout, in one place: what the app writes there and what reads it back.

The prediction log (:mod:`bird_model.monitoring.log`), visitors' feedback
(:mod:`bird_model.feedback`), the monitor command, the Hub mirror and training's ``--data``
(:mod:`bird_model.sources`) all name these paths from here, so none imports another for them::

    LOG_FOLDER/
      predictions-YYYY-MM-DD.jsonl     one record per served prediction (UTC day)
      images/SHA256.EXT                the uploads themselves, only with BIRD_LOG_IMAGES=1
      feedback-YYYY-MM-DD.jsonl        one record per stored feedback report (UTC day)
      feedback/                        train.py --data LOG_FOLDER/feedback reads accepted/ only
        .bird-feedback                 the marker that tells the data reader what this folder is
        pending/CLASS/SHA256.EXT       every new report naming a class lands here
        accepted/CLASS/SHA256.EXT      the operator accepted it: python -m bird_model.feedback accept
        none-of-these/SHA256.EXT       "none of these" reports: never a class, never reviewed
        reviews.jsonl                  the operator's decisions (id, class, accepted|rejected, time)

Pending and accepted photos sit in separate trees because a visitor can report anything:
nothing reaches training until a person has looked at it. The reviews file is inside
``feedback/`` (not ``feedback-reviews.jsonl`` beside it) so that it neither matches
:data:`RECORD_GLOB` nor needs its own mirror pattern.

This module is plain names and paths: it imports nothing of the package.
"""

from __future__ import annotations

from pathlib import Path

PREDICTION_GLOB = "predictions-*.jsonl"
IMAGES_DIR = "images"
RECORD_GLOB = "feedback-*.jsonl"
FEEDBACK_DIR = "feedback"
MARKER = ".bird-feedback"
PENDING_DIR = "pending"
ACCEPTED_DIR = "accepted"
NONE_DIR = "none-of-these"
REVIEWS_FILE = "reviews.jsonl"

NONE_OF_THESE = "none of these"
"""What a visitor (or API caller) says of a photo that shows none of the model's classes; the
``reported`` value of its feedback record."""

LEGACY_NONE_DIR = "feedback-none-of-these"
"""Where "none of these" photos were kept before the review step (beside ``feedback/``, whose
sub-folders were then the classes themselves); :mod:`bird_model.feedback` moves both."""

MIRROR_PATTERNS = (PREDICTION_GLOB, f"{IMAGES_DIR}/*", RECORD_GLOB, f"{FEEDBACK_DIR}/*")
"""What the log's Hub mirror uploads (``*`` spans folders there): everything above, pending
reports included, so an operator can review a Space's feedback from a downloaded copy."""


def prediction_file(day: str) -> str:
    """``day`` is ``YYYY-MM-DD`` (UTC)."""
    return f"predictions-{day}.jsonl"


def record_file(day: str) -> str:
    """``day`` is ``YYYY-MM-DD`` (UTC)."""
    return f"feedback-{day}.jsonl"


def is_feedback_folder(folder: Path) -> bool:
    """True for a ``feedback/`` folder written by the feedback store (local, or a mirror's copy)."""
    return (folder / MARKER).is_file()

"""What "normal" looks like: the training class counts and validation histograms in ``baseline.json``.

Training saves it in the model folder (:func:`compute_baseline`); the report compares a log
with it. :class:`Baseline` reads and writes the file's keys unchanged.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from bird_model.artifacts import BASELINE_FILE, ModelFolder, ModelFolderError

if TYPE_CHECKING:
    from bird_model.ood import OutlierDetector

BASELINE_VERSION = 1
CONFIDENCE_EDGES = [round(edge, 1) for edge in np.linspace(0.0, 1.0, 11)]
"""Fixed bins for the top confidence, so histograms of any two models and logs line up."""
LOW_CONFIDENCE = 0.5
"""A top class under 50% means the model thinks another class at least as likely as its answer."""
OUTLIER_QUANTILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True)
class Baseline:
    """``baseline.json``: what serving should look like when nothing has changed.

    Histograms hold counts, not shares, so a report knows how much evidence the validation
    side carries. :meth:`from_json` and :meth:`to_json` read and write the file's keys as is.
    """

    classes: list[str]
    training_class_counts: list[int]
    validation_count: int
    confidence_edges: list[float]
    validation_confidence_counts: list[int]
    low_confidence_threshold: float
    validation_low_confidence_share: float
    unknown_threshold: float
    outlier_edges: list[float]
    validation_outlier_counts: list[int]
    validation_unknown_share: float
    expected_unknown_share: float
    format_version: int = BASELINE_VERSION

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Baseline:
        """Raises ``TypeError`` when a key is missing; keys it does not know are ignored."""
        return cls(**{item.name: document[item.name] for item in fields(cls) if item.name in document})

    def to_json(self) -> dict[str, Any]:
        """The file's keys in their written order: ``format_version`` first, then the fields."""
        values = asdict(self)
        return {"format_version": values.pop("format_version"), **values}


def compute_baseline(
    classes: list[str],
    train_labels: np.ndarray,
    validation_probabilities: np.ndarray,
    validation_features: np.ndarray,
    detector: OutlierDetector,
) -> Baseline:
    """What serving should look like if the world matches the data the model was built on.

    The outlier bins are the validation deciles plus the threshold, so each validation bin
    holds about 10% and the last bin, from the threshold up, holds unknown photos.
    """
    confidence = validation_probabilities.max(axis=1)
    scores = detector.score(validation_features)
    edges = outlier_edges(scores, detector.threshold)
    return Baseline(
        classes=classes,
        training_class_counts=np.bincount(train_labels, minlength=len(classes)).tolist(),
        validation_count=len(confidence),
        confidence_edges=CONFIDENCE_EDGES,
        validation_confidence_counts=histogram(confidence, CONFIDENCE_EDGES),
        low_confidence_threshold=LOW_CONFIDENCE,
        validation_low_confidence_share=float(np.mean(confidence < LOW_CONFIDENCE)),
        unknown_threshold=detector.threshold,
        outlier_edges=edges,
        validation_outlier_counts=histogram(scores, edges),
        validation_unknown_share=float(np.mean(scores > detector.threshold)),
        expected_unknown_share=float(np.sum(scores > detector.threshold) + 1) / (len(scores) + 1),
    )


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


def read_baseline(folder: ModelFolder) -> Baseline:
    """Raises ``ModelFolderError`` for a folder trained before baselines were saved."""
    path = folder.path / BASELINE_FILE
    if not path.is_file():
        raise ModelFolderError(
            f"{folder.path} has no {BASELINE_FILE}: it was trained before monitoring existed; retrain it to monitor it."
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(document, dict) or document.get("classes") != folder.classes:
        raise ModelFolderError(f"{path} lists other classes than the model; the files come from different runs.")
    try:
        return Baseline.from_json(document)
    except (KeyError, TypeError) as error:
        raise ModelFolderError(f"{path} is not a baseline of this format (missing {error}).") from error



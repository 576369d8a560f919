"""Scoring a trained model: the numbers in ``metrics.json`` (:class:`Metrics`) and the confusion-matrix picture."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class SplitMetrics:
    """How the model did on one side of the split (``metrics.json``'s ``validation`` and ``training``)."""

    accuracy: float
    macro_f1: float
    count: int
    correct: int
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]
    """Rows: true class, columns: predicted, in ``labels.json`` order."""
    mean_confidence_correct: float | None
    mean_confidence_wrong: float | None

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SplitMetrics:
        per_class = {name: ClassScores(**scores) for name, scores in document["per_class"].items()}
        return cls(**{**_known(cls, document), "per_class": per_class})


@dataclass(frozen=True)
class OutlierMetrics:
    """The "not one of my birds" check: its method, threshold and validation pass rate."""

    method: str
    threshold: float
    """Outlier scores above it are called unknown."""
    validation_pass_rate: float


@dataclass(frozen=True)
class ServingVariant:
    """One LiteRT conversion as measured at export (:mod:`bird_model.quantization`): the served one and the others."""

    name: str
    """``float32``, ``dynamic-range`` or ``full-integer``."""
    size_bytes: int
    accuracy: float
    """On the validation photos."""
    p50_ms: float
    """Median forward pass of one photo at export, the variants taking turns on the same photo."""
    outliers_unknown: int
    """Reference outliers (flat colours, noise) called unknown, of :attr:`outliers`."""
    outliers: int
    qualifies: bool
    """Whether it passed the rule: accuracy within 0.5 points of float32, every outlier float32 calls unknown so called."""
    served: bool
    own_outliers_unknown: int = 0
    """The trainer's photos of other things (``train.py --outlier-photos``) called unknown, of :attr:`own_outliers`."""
    own_outliers: int = 0


@dataclass(frozen=True)
class ClassComparison:
    """One class of :class:`ParentComparison`: the new model on that class's shared photos, the
    parent on its own validation photos of the class (its ``metrics.json`` recall)."""

    photos: int
    parent_accuracy: float
    new_accuracy: float

    @property
    def change(self) -> float:
        return self.new_accuracy - self.parent_accuracy


@dataclass(frozen=True)
class ParentComparison:
    """The new model against the published one it replaces, on the photos that validated that one."""

    parent_commit: str
    photos: int
    parent_photos: int
    parent_accuracy: float
    new_accuracy: float
    per_class: dict[str, ClassComparison] = field(default_factory=dict)
    """Classes with shared photos whose parent accuracy is known; empty in documents written before
    the per-class guard, or against a parent whose metrics had no per-class scores."""

    @property
    def is_worse(self) -> bool:
        """Overall; the per-class rule is the release policy's (:func:`bird_model.release.regressed_classes`)."""
        return self.new_accuracy < self.parent_accuracy

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ParentComparison:
        per_class = {name: ClassComparison(**scores) for name, scores in document.get("per_class", {}).items()}
        return cls(**{**document, "per_class": per_class})


@dataclass(frozen=True)
class Metrics:
    """``metrics.json``; :meth:`from_json` and :meth:`to_json` keep its keys as they are."""

    validation: SplitMetrics
    training: SplitMetrics
    outliers: OutlierMetrics | None = None
    parent_comparison: ParentComparison | None = None
    """Only for a retraining of a published model."""
    serving_variants: list[ServingVariant] = field(default_factory=list)
    """The LiteRT conversions measured at export; empty in folders from before the choice."""

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Metrics:
        """Raises ``KeyError`` or ``TypeError`` for a document of another shape."""
        outliers, comparison = document.get("outliers"), document.get("parent_comparison")
        return cls(
            validation=SplitMetrics.from_json(document["validation"]),
            training=SplitMetrics.from_json(document["training"]),
            outliers=OutlierMetrics(**outliers) if outliers else None,
            parent_comparison=ParentComparison.from_json(comparison) if comparison else None,
            serving_variants=[ServingVariant(**variant) for variant in document.get("serving_variants", [])],
        )

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        return {key: value for key, value in document.items() if value is not None}


def _known(cls: type, document: dict[str, Any]) -> dict[str, Any]:
    return {item.name: document[item.name] for item in fields(cls)}


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> SplitMetrics:
    """Accuracy, per-class precision/recall/F1, confusion matrix and confidence summaries.

    The mean confidence of right and of wrong answers tells a reader whether the model
    knows when it is unsure, which accuracy alone does not.
    """
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(classes):
        true_positive = confusion[index, index]
        precision = _ratio(true_positive, confusion[:, index].sum())
        recall = _ratio(true_positive, confusion[index, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = ClassScores(precision, recall, f1, int(confusion[index].sum()))
    right = predicted == labels
    return SplitMetrics(
        accuracy=_ratio(right.sum(), len(labels)),
        macro_f1=float(np.mean([scores.f1 for scores in per_class.values()])),
        count=int(len(labels)),
        correct=int(right.sum()),
        per_class=per_class,
        confusion_matrix=confusion.tolist(),
        mean_confidence_correct=float(confidence[right].mean()) if right.any() else None,
        mean_confidence_wrong=float(confidence[~right].mean()) if (~right).any() else None,
    )


def save_confusion_matrix(
    confusion: list[list[int]], classes: list[str], path: Path, title: str = "Validation confusion matrix"
) -> None:
    """Draw the matrix as a PNG: rows the true class, columns the predicted one, each cell its count.

    The colour is the row's share (recall per class), so a rare class's mistakes show as
    clearly as a common one's. The figure grows with the class count and the labels shrink
    (:func:`_matrix_layout`), so 4 and 200 classes both read; counts are written only while
    cells are big enough for them. Full class names in DejaVu Sans (Matplotlib's own font, so
    no missing glyphs); the saved picture is cropped to its content. Matplotlib on an Agg
    canvas, without pyplot's global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(confusion, dtype=int)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    cell, font, show_counts = _matrix_layout(len(classes))
    side = cell * len(classes)
    label_room = 0.6 * font / 72 * max((len(name) for name in classes), default=1)
    figure = Figure(figsize=(side + label_room + 2.0, side + label_room + 1.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    if show_counts:
        for (row, column), count in np.ndenumerate(counts):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=font,
                      color="white" if shares[row, column] > 0.5 else "black")
    positions = np.arange(len(classes))
    axes.set_xticks(positions, classes, rotation=45 if len(classes) <= 12 else 90,
                    ha="right" if len(classes) <= 12 else "center", fontsize=font)
    axes.set_yticks(positions, classes, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title + ": " + ("photo counts, " if show_counts else "")
                   + "colour = share of the true class's photos")
    # A colour bar as tall as a 200-class matrix would dwarf its labels; 6 in is enough to read it.
    figure.colorbar(image, ax=axes, label="share of the true class", shrink=min(1.0, 6 / side))
    figure.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.2)


COUNTS_UP_TO = 40
"""Classes up to which each cell shows its count; beyond, cells are too small to read one."""


def _matrix_layout(classes: int) -> tuple[float, float, bool]:
    """Cell size (inches), label font size (points) and whether counts fit, for ``classes`` classes.

    Cells shrink from 0.6 in toward 0.16 in (200 classes: a 32 in, 3200 px matrix), and the
    font with them, never below 5 pt, so every name stays legible when zoomed.
    """
    cell = min(0.6, max(0.16, 12 / max(classes, 1)))
    font = min(10.0, max(5.0, cell * 72 * 0.55))
    return cell, font, classes <= COUNTS_UP_TO


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0

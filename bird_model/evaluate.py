"""Grade a model on a labelled test set: the numbers training reports for its validation photos.

    python -m bird_model.evaluate --model runs/latest --data test_photos/
    python -m bird_model.evaluate --model OWNER/birds --revision v1 --data test_photos/ \\
        --output test_metrics.json --confusion-matrix test_confusion.png

DIR holds one folder per class, as for training. Each photo goes through the app's decoder,
model and "not one of my birds" check (bird_model/batch.py); the metrics are training's own
(bird_model/evaluation.py: accuracy, per-class precision/recall/F1, macro F1, confusion matrix),
plus how many graded photos the check calls unknown. Photos of classes the model does not know
are not graded, only counted (with how many of them it calls unknown); unreadable files are
listed with their reason.
Exit status: 0 graded; 2 bad input (model, data folder, or no photo of a class the model knows).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bird_model.batch import add_model_options, classify_files, open_classifier, output_file
from bird_model.data import DatasetError, list_candidates
from bird_model.evaluation import SplitMetrics, classification_metrics, save_confusion_matrix
from bird_model.inference import Classifier


@dataclass(frozen=True)
class OtherClass:
    """A class folder of the test set that the model does not know: counted, not graded."""

    photos: int
    called_unknown: int | None
    """How many the out-of-distribution check calls unknown (what it should do); None without the check."""


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass(frozen=True)
class TestSetResult:
    """What ``--output`` writes: the graded metrics and everything that was not graded, and why."""

    model: str
    """Name and version, as the page shows them."""
    metrics: SplitMetrics
    """Over the photos of the classes the model knows, in the model's class order."""
    unknown: int | None
    """Graded photos the out-of-distribution check calls unknown; None for a model without ``ood.npz``."""
    other_classes: dict[str, OtherClass]
    unreadable: list[Unreadable]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def grade(classifier: Classifier, data: Path, model: str) -> TestSetResult:
    """Classify every photo under ``data``'s class folders and score the known classes' answers.

    Raises ``DatasetError`` when the folder is missing or holds no photo of a known class.
    """
    candidates, rejections = list_candidates([data])
    known = [(path, label) for path, label in candidates if label in classifier.classes]
    if not known:
        found = sorted({label for _, label in candidates}) or ["no class folders"]
        raise DatasetError(
            f"{data} has no photo of a class the model knows (the model: {', '.join(classifier.classes)}; "
            f"the folder: {', '.join(found)})."
        )
    label_of = dict(candidates)
    unreadable = [Unreadable(str(rejection.path), rejection.reason) for rejection in rejections]
    labels: list[int] = []
    probabilities: list[list[float]] = []
    unknown = 0
    other_photos: Counter[str] = Counter()
    other_unknown: Counter[str] = Counter()
    for result in classify_files(classifier, [path for path, _ in candidates], "Grading"):
        label = label_of[result.path]
        if result.prediction is None:
            unreadable.append(Unreadable(str(result.path), result.error or ""))
        elif label in classifier.classes:
            labels.append(classifier.classes.index(label))
            probabilities.append([result.prediction.scores[name] for name in classifier.classes])
            unknown += result.prediction.unknown
        else:
            other_photos[label] += 1
            other_unknown[label] += result.prediction.unknown
    if not labels:
        raise DatasetError(f"None of the photos of the classes the model knows in {data} could be read.")
    has_check = classifier.detector is not None
    return TestSetResult(
        model=model,
        metrics=classification_metrics(np.array(labels), np.array(probabilities), classifier.classes),
        unknown=unknown if has_check else None,
        other_classes={
            name: OtherClass(count, other_unknown[name] if has_check else None)
            for name, count in sorted(other_photos.items())
        },
        unreadable=sorted(unreadable, key=lambda item: item.path),
    )


def format_result(result: TestSetResult, validation_accuracy: float) -> str:
    """The console report: the headline numbers first, then per class, then what was not graded."""
    metrics = result.metrics
    lines = [
        f"Model: {result.model}",
        f"Accuracy {metrics.accuracy:.2%} ({metrics.correct}/{metrics.count}), macro F1 {metrics.macro_f1:.3f} "
        f"(validation accuracy at training: {validation_accuracy:.2%})",
    ]
    if result.unknown is None:
        lines.append("Unknown: this model folder has no out-of-distribution check (ood.npz).")
    else:
        lines.append(f"Unknown: {result.unknown} of {metrics.count} graded photos ({result.unknown / metrics.count:.1%}) "
                     "were called not one of the model's birds")
    width = max(len(name) for name in metrics.per_class)
    lines.append(f"  {'class':<{width}}  precision  recall     F1  photos")
    for name, scores in metrics.per_class.items():
        lines.append(f"  {name:<{width}}  {scores.precision:9.3f}  {scores.recall:6.3f}  {scores.f1:5.3f}  "
                     f"{scores.support:6d}")
    missing = [name for name, scores in metrics.per_class.items() if scores.support == 0]
    if missing:
        lines.append(f"No photos of: {', '.join(missing)} (their recall is shown as 0).")
    for name, other in result.other_classes.items():
        called = "" if other.called_unknown is None else f", {other.called_unknown} called unknown"
        lines.append(f"Not a class of the model, not graded: {name} ({other.photos} photos{called})")
    if result.unreadable:
        lines.append(f"Not graded, {len(result.unreadable)} files:")
        lines.extend(f"  {item.path}: {item.reason}" for item in result.unreadable)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bird_model.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_options(parser)
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="the labelled test set: one folder of photos per class")
    parser.add_argument("--output", type=output_file, metavar="FILE.json", help="also write the metrics as JSON")
    parser.add_argument("--confusion-matrix", type=output_file, metavar="FILE.png",
                        help="also draw the confusion matrix as a PNG")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fetched, classifier = open_classifier(parser, args)
    try:
        result = grade(classifier, args.data, fetched.version())
    except DatasetError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(format_result(result, fetched.folder.metrics.validation.accuracy))
    if args.output:
        args.output.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"Metrics: {args.output}")
    if args.confusion_matrix:
        save_confusion_matrix(result.metrics.confusion_matrix, classifier.classes, args.confusion_matrix,
                              title=f"Test set confusion matrix ({args.data.name})")
        print(f"Confusion matrix: {args.confusion_matrix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grade a model on a labelled test set: the numbers training reports for its validation photos.

    python -m bird_model.evaluate --model runs/latest --data test_photos/
    python -m bird_model.evaluate --model OWNER/birds --revision v1 --data test_photos/ \\
        --output test_metrics.json --confusion-matrix test_confusion.png

DIR holds one folder per class, as for training. Each photo goes through the app's decoder,
model and "not one of my birds" check (bird_model/batch.py); the metrics are training's own
(bird_model/evaluation.py: accuracy, per-class precision/recall/F1, macro F1, confusion matrix),
plus how many graded photos the check calls unknown. Photos that trained the model (their SHA-256
is in the model folder's split.json training list) are graded apart: a model scores well on its own
training photos whatever it learnt, so the headline figures are on the others (and say how many of
those validated it at training). Photos of classes the model does not know are not graded, only
counted (with how many of them it calls unknown); unreadable files are listed with their reason.
Exit status: 0 graded; 2 bad input (model, data folder, or no photo of a class the model knows).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bird_model.artifacts import SPLIT_FILE
from bird_model.batch import add_model_options, classify_files, open_classifier, output_file
from bird_model.data import DatasetError, list_candidates
from bird_model.evaluation import SplitMetrics, classification_metrics, save_confusion_matrix
from bird_model.hub import FetchedModel, HubError, read_published_file
from bird_model.inference import Classifier

SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelSplit:
    """The content hashes of the photos that trained the model and of those that validated it."""

    train: frozenset[str]
    validation: frozenset[str]


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
class TrainedOn:
    """Graded photos that the model's ``split.json`` lists: the training ones graded apart."""

    photos: int
    """Photos of the test set that trained the model."""
    metrics: SplitMetrics | None
    """On those photos alone (None when there are none): no test of the model."""
    validation: int
    """Photos that validated the model at training (chose its epochs and threshold), graded in the headline."""
    new: int
    """Photos the model never saw, graded in the headline."""


@dataclass(frozen=True)
class TestSetResult:
    """What ``--output`` writes: the graded metrics and everything that was not graded, and why."""

    model: str
    """Name and version, as the page shows them."""
    metrics: SplitMetrics
    """Over the photos of the classes the model knows that did not train it (all of them when every one
    did, or when the model's split is unknown), in the model's class order."""
    unknown: int | None
    """Photos of ``metrics`` the out-of-distribution check calls unknown; None for a model without ``ood.npz``."""
    trained_on: TrainedOn | None
    """None when the model folder's ``split.json`` could not be read: then no photo is set apart."""
    other_classes: dict[str, OtherClass]
    unreadable: list[Unreadable]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_model_split(fetched: FetchedModel) -> ModelSplit | None:
    """The model's ``split.json`` (the local folder's, or the served commit's on the Hub); None when it
    is missing, unreachable or not a split listing (a downloaded folder is a stranger's file)."""
    try:
        if fetched.repo_id is None:
            document = json.loads((fetched.folder.path / SPLIT_FILE).read_text(encoding="utf-8"))
        else:
            document = read_published_file(fetched.repo_id, SPLIT_FILE, fetched.commit or fetched.revision or "main",
                                           token=os.environ.get("HF_TOKEN") or None)
    except (OSError, UnicodeDecodeError, ValueError, HubError):
        return None

    def hashes(side: str) -> frozenset[str] | None:
        rows = document.get(side) if isinstance(document, dict) else None
        if not isinstance(rows, list):
            return None
        found = [row.get("sha256") if isinstance(row, dict) else None for row in rows]
        return frozenset(found) if all(isinstance(h, str) and SHA256.fullmatch(h) for h in found) else None

    train, validation = hashes("train"), hashes("validation")
    return None if train is None or validation is None else ModelSplit(train, validation)


def file_sha256(path: Path) -> str:
    """The hash ``split.json`` names a photo by: its file's bytes (:mod:`bird_model.data`)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def grade(classifier: Classifier, data: Path, model: str, split: ModelSplit | None = None) -> TestSetResult:
    """Classify every photo under ``data``'s class folders and score the known classes' answers.

    With the model's ``split``, photos that trained it are scored apart (:class:`TrainedOn`).
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
    graded: dict[str, list[tuple[int, list[float], bool]]] = {"new": [], "validation": [], "train": []}
    other_photos: Counter[str] = Counter()
    other_unknown: Counter[str] = Counter()
    for result in classify_files(classifier, [path for path, _ in candidates], "Grading"):
        label = label_of[result.path]
        if result.prediction is None:
            unreadable.append(Unreadable(str(result.path), result.error or ""))
        elif label in classifier.classes:
            digest = file_sha256(result.path) if split is not None else ""
            side = ("train" if digest in split.train else "validation" if digest in split.validation else "new") \
                if split is not None else "new"
            graded[side].append((classifier.classes.index(label),
                                 [result.prediction.scores[name] for name in classifier.classes],
                                 result.prediction.unknown))
        else:
            other_photos[label] += 1
            other_unknown[label] += result.prediction.unknown
    untrained = graded["new"] + graded["validation"]
    headline = untrained or graded["train"]
    if not headline:
        raise DatasetError(f"None of the photos of the classes the model knows in {data} could be read.")
    has_check = classifier.detector is not None
    trained_on = None if split is None else TrainedOn(
        photos=len(graded["train"]),
        metrics=_metrics(graded["train"], classifier.classes) if graded["train"] else None,
        validation=len(graded["validation"]),
        new=len(graded["new"]),
    )
    return TestSetResult(
        model=model,
        metrics=_metrics(headline, classifier.classes),
        unknown=sum(unknown for _, _, unknown in headline) if has_check else None,
        trained_on=trained_on,
        other_classes={
            name: OtherClass(count, other_unknown[name] if has_check else None)
            for name, count in sorted(other_photos.items())
        },
        unreadable=sorted(unreadable, key=lambda item: item.path),
    )


def _metrics(photos: list[tuple[int, list[float], bool]], classes: list[str]) -> SplitMetrics:
    labels = np.array([label for label, _, _ in photos])
    return classification_metrics(labels, np.array([scores for _, scores, _ in photos]), classes)


def format_result(result: TestSetResult, validation_accuracy: float) -> str:
    """The console report: what trained the model first, the headline numbers, then per class, then
    what was not graded."""
    metrics = result.metrics
    lines = [f"Model: {result.model}", *_trained_lines(result.trained_on),
             f"Accuracy {metrics.accuracy:.2%} ({metrics.correct}/{metrics.count}), macro F1 {metrics.macro_f1:.3f} "
             f"(validation accuracy at training: {validation_accuracy:.2%})"]
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


def _trained_lines(trained: TrainedOn | None) -> list[str]:
    """Which of the photos the model has seen, said before any figure that they would flatter."""
    if trained is None:
        return [f"The model's {SPLIT_FILE} could not be read, so photos that trained it cannot be set apart."]
    validated = (f" ({trained.validation} of them validated it at training, which chose its epochs and "
                 f"unknown threshold)" if trained.validation else "")
    if trained.metrics is None:
        return [f"None of these photos trained this model{validated}:"]
    on_them = f"{trained.metrics.accuracy:.2%} right on them, no test of it"
    if trained.validation + trained.new == 0:
        return [f"All {trained.photos} of these photos trained this model ({on_them}); the figures below are on "
                "them and say nothing of new photos:"]
    return [f"{trained.photos} of these photos trained this model ({on_them}); "
            f"on the other {trained.validation + trained.new}{validated}:"]


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
        result = grade(classifier, args.data, fetched.version(), read_model_split(fetched))
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

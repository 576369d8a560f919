"""Scoring a trained model: the numbers in ``metrics.json`` and the confusion-matrix picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
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
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(confusion[index].sum())}
    right = predicted == labels
    return {
        "accuracy": _ratio(right.sum(), len(labels)),
        "macro_f1": float(np.mean([scores["f1"] for scores in per_class.values()])),
        "count": int(len(labels)),
        "correct": int(right.sum()),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "mean_confidence_correct": float(confidence[right].mean()) if right.any() else None,
        "mean_confidence_wrong": float(confidence[~right].mean()) if (~right).any() else None,
    }


def save_confusion_matrix(confusion: list[list[int]], classes: list[str], path: Path) -> None:
    """Draw the matrix as a PNG (rows: true class, columns: predicted), darker = more photos."""
    cell, label_width, header = 72, 220, 40
    size = len(classes)
    width, height = label_width + cell * size + 10, header + cell * size + label_width // 2
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    peak = max(1, max(max(row) for row in confusion))
    draw.text((label_width, 10), "predicted →   (rows: true class)", fill="black", font=font)
    for row, name in enumerate(classes):
        draw.text((8, header + row * cell + cell // 2 - 8), name[:26], fill="black", font=font)
        for column in range(size):
            value = confusion[row][column]
            shade = int(255 - 200 * value / peak)
            box = (label_width + column * cell, header + row * cell)
            draw.rectangle([box, (box[0] + cell - 2, box[1] + cell - 2)], fill=(shade, shade, 255))
            text_colour = "white" if shade < 140 else "black"
            draw.text((box[0] + cell // 2 - 8, box[1] + cell // 2 - 8), str(value), fill=text_colour, font=font)
    for column, name in enumerate(classes):
        x = label_width + column * cell + 4
        draw.text((x, header + size * cell + 6), name[:10], fill="black", font=font)
    image.save(path)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0

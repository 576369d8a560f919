"""metrics.json as a typed record, and the confusion-matrix picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from bird_model.evaluation import (
    Metrics, OutlierMetrics, ParentComparison, ServingVariant, classification_metrics, save_confusion_matrix,
)

CLASSES = ["amazon green parrot", "gray parrot", "macaw"]


def test_metrics_keep_the_keys_of_metrics_json() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    split = classification_metrics(labels, probabilities, CLASSES)
    variants = [ServingVariant("float32", 9_000_000, 0.5, 9.0, 20, 20, True, False),
                ServingVariant("full-integer", 2_700_000, 0.5, 5.0, 20, 20, True, True)]
    metrics = Metrics(split, split, OutlierMetrics("centroid", 0.5, 0.97), ParentComparison("abc", 2, 3, 1.0, 0.5), variants)
    document = json.loads(json.dumps(metrics.to_json()))

    assert list(document) == ["validation", "training", "outliers", "parent_comparison", "serving_variants"]
    assert list(document["serving_variants"][1]) == [
        "name", "size_bytes", "accuracy", "p50_ms", "outliers_unknown", "outliers", "qualifies", "served",
        "own_outliers_unknown", "own_outliers",
    ]
    assert list(document["validation"]) == [
        "accuracy", "macro_f1", "count", "correct", "per_class", "confusion_matrix",
        "mean_confidence_correct", "mean_confidence_wrong",
    ]
    assert list(document["validation"]["per_class"]["macaw"]) == ["precision", "recall", "f1", "support"]
    assert document["validation"]["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert Metrics.from_json(document) == metrics
    assert metrics.parent_comparison.is_worse
    older = {**document, "serving_variants": [{key: value for key, value in variant.items() if not key.startswith("own_")}
                                              for variant in document["serving_variants"]]}
    assert Metrics.from_json(older) == metrics, "a metrics.json from before --outlier-photos still reads"
    assert "parent_comparison" not in Metrics(split, split).to_json()


def test_confusion_matrix_is_a_png_with_room_for_every_class(tmp_path: Path) -> None:
    path = tmp_path / "confusion_matrix.png"
    save_confusion_matrix([[10, 1, 0], [2, 8, 0], [0, 0, 5]], CLASSES, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 400 and image.height >= 400

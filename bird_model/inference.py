"""Classifying one photo with a model folder, exactly as training saw its photos.

A folder written by today's training holds ``model.tflite``, served by the LiteRT
interpreter without importing TensorFlow (milliseconds per photo, a cold start without
TensorFlow's seconds of import). A folder without it is served from ``model.keras``
through Keras. Either way one forward pass gives the class probabilities and the pooled
features that the out-of-distribution detector (``ood.npz``) scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bird_model.artifacts import LABELS_FILE, LITERT_FILE, OOD_FILE, ModelFolder, ModelFolderError
from bird_model.images import load_rgb
from bird_model.litert import LiteRTModel
from bird_model.ood import OutlierDetector

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""uint8 ``(n, size, size, 3)`` pixels in; ``(n, features)`` and ``(n, classes)`` probabilities out."""


@dataclass(frozen=True)
class Prediction:
    scores: dict[str, float]
    """Every class with its probability, highest first."""
    outlier_score: float | None
    """Distance of the photo's features from the training classes; None without ``ood.npz``."""
    unknown: bool
    """True when the photo looks like none of the classes (the score is over the threshold)."""

    @property
    def label(self) -> str:
        return next(iter(self.scores))

    @property
    def confidence(self) -> float:
        return next(iter(self.scores.values()))


class Classifier:
    """A loaded model folder: decode a photo with the training decoder, score it, judge it."""

    def __init__(self, folder: ModelFolder) -> None:
        litert_path = folder.path / LITERT_FILE
        if litert_path.is_file():
            model_path, (forward, outputs) = litert_path, _litert_forward(litert_path)
        else:
            model_path, (forward, outputs) = folder.model_path, _keras_forward(folder.model_path)
        if outputs != len(folder.classes):
            raise ModelFolderError(
                f"{model_path} predicts {outputs} classes but {folder.path / LABELS_FILE} names "
                f"{len(folder.classes)}; the model and label map come from different runs."
            )
        detector_path = folder.path / OOD_FILE
        self.detector = OutlierDetector.load(detector_path) if detector_path.is_file() else None
        self.folder = folder
        self.forward = forward

    @property
    def classes(self) -> list[str]:
        return self.folder.classes

    def classify(self, photo: str | Path | BinaryIO | bytes) -> Prediction:
        """Raises ``ImageError`` for an unusable photo."""
        features, probabilities = self.forward(load_rgb(photo, self.folder.image_size)[np.newaxis])
        order = np.argsort(probabilities[0])[::-1]
        scores = {self.classes[i]: float(probabilities[0, i]) for i in order}
        if self.detector is None:
            return Prediction(scores, outlier_score=None, unknown=False)
        outlier_score = float(self.detector.score(features)[0])
        return Prediction(scores, outlier_score, unknown=outlier_score > self.detector.threshold)


def _litert_forward(path: Path) -> tuple[Forward, int]:
    model = LiteRTModel(path)
    return model.outputs, model.num_classes


def _keras_forward(path: Path) -> tuple[Forward, int]:
    """For folders without ``model.tflite``; TensorFlow loads only here.

    A Space deployed by ``bird_model.space`` installs neither TensorFlow nor Keras, so there
    the error says how such a folder can be served instead.
    """
    try:
        import keras
        import tensorflow as tf
    except ImportError as error:
        raise ModelFolderError(
            f"{path.parent} has no {LITERT_FILE}, and serving its {path.name} needs TensorFlow and Keras, which are "
            f"not installed here (No module named {error.name!r}; a Space installs only the serving requirements). "
            "Install the full requirements (pip install -r requirements.txt), or retrain the model with the "
            "current train.py, which also writes model.tflite."
        ) from error

    from bird_model.model import features_and_probabilities

    # safe_mode refuses to deserialise arbitrary Python code (Lambda layers) from a
    # downloaded file; our model has none, so a model that needs it is not ours.
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    function = tf.function(features_and_probabilities(model), reduce_retracing=True)

    def forward(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, probabilities = function(pixels.astype(np.float32))
        return np.asarray(features), np.asarray(probabilities)

    return forward, int(model.output_shape[-1])

"""Classifying one photo with a model folder, exactly as training saw its photos.

A folder written by today's training holds ``model.tflite``, served by the LiteRT
interpreter without importing TensorFlow (milliseconds per photo, a cold start without
TensorFlow's seconds of import). A folder without it is served from its Keras model
through Keras. Either way one forward pass gives the class probabilities, the pooled
features that the out-of-distribution detector (``ood.npz``) scores, and the top class's
activation map that :meth:`Classifier.explain` draws over the photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from bird_model.artifacts import LABELS_FILE, LITERT_FILE, OOD_FILE, ModelFolder, ModelFolderError
from bird_model.images import load_rgb, load_view
from bird_model.litert import ForwardPass, LiteRTModel
from bird_model.ood import OutlierDetector
from bird_model.overlay import draw_overlay

Forward = Callable[[np.ndarray], ForwardPass]
"""uint8 ``(n, size, size, 3)`` pixels in; the serving model's outputs for them out."""


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


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    overlay: Image.Image | None
    """The photo (as the model saw it, or as uploaded: :meth:`Classifier.explain`) with the top class's activation map over it;
    None for a model converted before the map was an output (:attr:`Classifier.explains`)."""


class Classifier:
    """A loaded model folder: decode a photo with the training decoder, score it, judge it."""

    def __init__(self, folder: ModelFolder, litert_path: Path | None = None) -> None:
        """``litert_path`` serves another conversion than the folder's ``model.tflite`` (benchmarks compare them)."""
        litert_path = litert_path or folder.path / LITERT_FILE
        if litert_path.is_file():
            model_path, (forward, outputs, explains) = litert_path, _litert_forward(litert_path, folder)
        else:
            model_path, (forward, outputs, explains) = folder.model_path, _keras_forward(folder)
        if outputs != len(folder.classes):
            raise ModelFolderError(
                f"{model_path} predicts {outputs} classes but {folder.path / LABELS_FILE} names "
                f"{len(folder.classes)}; the model and label map come from different runs."
            )
        self.detector = _load_detector(folder.path / OOD_FILE)
        self.folder = folder
        self.forward = forward
        self.explains = explains
        """Whether :meth:`explain` can draw the overlay: False for a ``model.tflite`` converted
        before the activation map was one of its outputs (retraining adds it)."""

    @property
    def classes(self) -> list[str]:
        return self.folder.classes

    def classify(self, photo: str | Path | BinaryIO | bytes) -> Prediction:
        """Raises ``ImageError`` for an unusable photo."""
        return self._judge(self.forward(load_rgb(photo, self.folder.image_size)[np.newaxis]))

    def explain(self, photo: str | Path | BinaryIO | bytes, view_side: int | None = None) -> Explanation:
        """The prediction and where the model looked for its top class, from one forward pass.

        The map is drawn over the photo as the model saw it (square, model size), or with
        ``view_side`` over the photo as uploaded, its own shape, at most that many pixels on its
        longer side (a second, bounded decode: :func:`~bird_model.images.load_view`). Raises
        ``ImageError`` for an unusable photo.
        """
        pixels = load_rgb(photo, self.folder.image_size)
        outputs = self.forward(pixels[np.newaxis])
        overlay = None
        if outputs.activation is not None:
            canvas = pixels if view_side is None else load_view(photo, view_side)
            overlay = draw_overlay(canvas, outputs.activation[0])
        return Explanation(self._judge(outputs), overlay)

    def _judge(self, outputs: ForwardPass) -> Prediction:
        probabilities = outputs.probabilities[0]
        scores = {self.classes[i]: float(probabilities[i]) for i in np.argsort(probabilities)[::-1]}
        if self.detector is None:
            return Prediction(scores, outlier_score=None, unknown=False)
        outlier_score = float(self.detector.score(outputs.features)[0])
        return Prediction(scores, outlier_score, unknown=outlier_score > self.detector.threshold)


def _load_detector(path: Path) -> OutlierDetector | None:
    """The folder's outlier detector, None without one; a damaged or hostile one stops the start."""
    if not path.is_file():
        return None
    try:
        return OutlierDetector.load(path)
    except ValueError as error:
        raise ModelFolderError(str(error)) from error


def _litert_forward(path: Path, folder: ModelFolder) -> tuple[Forward, int, bool]:
    """The converted model, refused when it takes photos of another size than the run config says
    (a downloaded folder is a stranger's: every photo would fail inside the interpreter)."""
    model = LiteRTModel(path)
    if model.image_size != folder.image_size:
        raise ModelFolderError(
            f"{path} takes {model.image_size}x{model.image_size} photos but the folder's run config says image_size "
            f"{folder.image_size}; the model and its run config come from different runs."
        )
    return model.outputs, model.num_classes, model.activation_shape is not None


def _keras_forward(folder: ModelFolder) -> tuple[Forward, int, bool]:
    """For folders without ``model.tflite``; TensorFlow loads only here.

    A Space deployed by ``bird_model.space`` installs neither TensorFlow nor Keras, so there
    the error says how such a folder can be served instead.
    """
    try:
        import keras  # noqa: F401 - only to say what is missing before the model loads
        import tensorflow as tf
    except ImportError as error:
        raise ModelFolderError(
            f"{folder.path} has no {LITERT_FILE}, and serving its Keras model needs TensorFlow and Keras, which are "
            f"not installed here (No module named {error.name!r}; a Space installs only the serving requirements). "
            "Install the full requirements (pip install -r requirements.txt), or retrain the model with the "
            "current train.py, which also writes model.tflite."
        ) from error

    from bird_model.model import load_keras_model, serving_model

    model = load_keras_model(folder.model_path)
    function = tf.function(serving_model(model), reduce_retracing=True)

    def forward(pixels: np.ndarray) -> ForwardPass:
        features, probabilities, activation = function(pixels.astype(np.float32))
        return ForwardPass(np.asarray(features), np.asarray(probabilities), np.asarray(activation))

    return forward, int(model.output_shape[-1]), True

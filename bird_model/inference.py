"""Classifying one photo with a model folder, exactly as training saw its photos."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from bird_model.artifacts import ModelFolder, ModelFolderError
from bird_model.images import load_rgb


class Classifier:
    """A loaded model folder: decode a photo with the training decoder, return class scores."""

    def __init__(self, folder: ModelFolder) -> None:
        import keras
        import tensorflow as tf

        # safe_mode refuses to deserialise arbitrary Python code (Lambda layers) from a
        # downloaded file; our model has none, so a model that needs it is not ours.
        model = keras.saving.load_model(folder.model_path, safe_mode=True, compile=False)
        outputs = model.output_shape[-1]
        if outputs != len(folder.classes):
            raise ModelFolderError(
                f"{folder.model_path} predicts {outputs} classes but {folder.path / 'labels.json'} names "
                f"{len(folder.classes)}; the model and label map come from different runs."
            )
        self.folder = folder
        self._forward = tf.function(lambda pixels: model(pixels, training=False), reduce_retracing=True)

    @property
    def classes(self) -> list[str]:
        return self.folder.classes

    def predict(self, photo: str | Path | BinaryIO | bytes) -> dict[str, float]:
        """Scores for every class, highest first. Raises ``ImageError`` for an unusable photo."""
        pixels = load_rgb(photo, self.folder.image_size)
        probabilities = self.probabilities(pixels[np.newaxis])[0]
        order = np.argsort(probabilities)[::-1]
        return {self.classes[i]: float(probabilities[i]) for i in order}

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of uint8 ``(n, size, size, 3)`` pixels."""
        return np.asarray(self._forward(pixels.astype(np.float32)))

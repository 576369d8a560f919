"""The serving model: ``model.keras`` converted to a LiteRT (TFLite) flatbuffer.

``model.predict`` spends most of a request in Keras and TensorFlow overhead, and importing
TensorFlow alone takes seconds, which a web demo pays at every cold start. The LiteRT
interpreter runs the same graph through XNNPACK in a few milliseconds and loads without
TensorFlow. The Keras model stays the source of truth: the float32 ``.tflite`` file is derived
from it at the end of training and checked against it before training finishes; the 8-bit
ones (:func:`export_quantized`) are measured instead (:mod:`bird_model.quantization`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from bird_model.console import cpp_log_filtered

if TYPE_CHECKING:
    import keras

PARITY_TOLERANCE = 1e-4
"""Largest difference (features or probabilities) accepted between the Keras model and its conversion.

Both compute in float32 and differ only in operation order (about 1e-7 on MobileNetV2);
an inactive augmentation layer that became active, or a lost scaling layer, is far above it.
"""

QUANTIZATIONS = ("dynamic-range", "full-integer")
"""The 8-bit conversions :func:`export_quantized` makes, besides the float32 one."""

FEATURES_OUTPUT = "output_0"
PROBABILITIES_OUTPUT = "output_1"
ACTIVATION_OUTPUT = "output_2"
"""Signature output names Keras gives the serving model's outputs, in their order; files
converted before the activation map existed have only the first two."""

NUM_THREADS = min(2, os.cpu_count() or 1)
"""Interpreter threads per photo. On a 2-core machine a second thread nearly halves the
interpreter's time per photo while the other core is free, and costs a little when another
process keeps that core busy; the app's target, a 2-vCPU Space, is the first case. The
measured times: benchmarks/README.md, "Latency"."""


@dataclass(frozen=True)
class ForwardPass:
    """What one forward pass of the serving model gives for ``n`` photos."""

    features: np.ndarray
    """``(n, features)`` pooled features, for the out-of-distribution check."""
    probabilities: np.ndarray
    """``(n, classes)`` class probabilities."""
    activation: np.ndarray | None
    """``(n, h, w)`` class activation map of each photo's top class; None for a model converted
    before it was an output."""


def export_litert(model: keras.Model, path: Path) -> None:
    """Write the classifier as a fp32 ``.tflite`` file taking one ``(1, size, size, 3)`` photo.

    The file answers with the pooled features (output 0, for the out-of-distribution check),
    the class probabilities (output 1) and the top class's activation map (output 2) from one
    forward pass (:func:`bird_model.model.serving_model`). A fixed batch of one is
    what serving sends: a dynamic batch made the interpreter spend about 30 ms reallocating
    at every change of batch size and was no faster per photo. The export calls the model
    with ``training=False``, so augmentation and dropout are left out. Raises
    ``RuntimeError`` if the converted model does not reproduce the Keras model.
    """
    import tensorflow as tf

    from bird_model.model import serving_model

    serving = serving_model(model)
    size = int(model.input_shape[1])
    signature = [tf.TensorSpec((1, size, size, 3), tf.float32, name="pixels")]
    serving.export(str(path), format="litert", input_signature=signature, verbose=False)
    _check_parity(serving, path, size)


def export_quantized(model: keras.Model, path: Path, quantization: str, calibration: np.ndarray) -> None:
    """Write the classifier like :func:`export_litert`, with its weights (and activations) in 8 bits.

    ``quantization`` is ``"dynamic-range"`` (int8 weights, float activations: no calibration)
    or ``"full-integer"`` (int8 weights and activations, their ranges measured on the uint8
    ``calibration`` photos; float32 input and outputs, so it is served like the float model).
    No parity check: 8 bits cannot match to 1e-4, so :mod:`bird_model.quantization` measures
    what the rounding does to accuracy and unknown verdicts instead, and keeps the variant
    only when they hold.
    """
    import tensorflow as tf

    from bird_model.model import serving_model

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    size = int(model.input_shape[1])
    signature = [tf.TensorSpec((1, size, size, 3), tf.float32, name="pixels")]
    options: dict[str, object] = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantization == "full-integer":
        photos = np.asarray(calibration, dtype=np.float32)
        options["representative_dataset"] = lambda: ([photo[np.newaxis]] for photo in photos)
    with cpp_log_filtered():  # the calibrator prints a summary line from C++ ("fully_quantize: 0, ...")
        serving_model(model).export(str(path), format="litert", input_signature=signature, verbose=False, **options)


def _check_parity(serving: keras.Model, path: Path, size: int) -> None:
    """Fail training rather than publish a serving model that answers differently.

    The activation map is compared relative to its largest value: it is a sum over 1280
    channels, so its absolute rounding differences grow with it, and the overlay draws it
    scaled to its maximum anyway.
    """
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    features, probabilities, activation = (np.asarray(output) for output in serving(pixels.astype(np.float32),
                                                                                    training=False))
    converted = LiteRTModel(path).outputs(pixels)
    scale = max(float(np.max(np.abs(activation))), 1e-12)
    difference = max(
        float(np.max(np.abs(converted.features - features))),
        float(np.max(np.abs(converted.probabilities - probabilities))),
        float(np.max(np.abs(converted.activation - activation))) / scale if converted.activation is not None else np.inf,
    )
    if difference > PARITY_TOLERANCE:
        raise RuntimeError(
            f"{path} differs from the Keras model by up to {difference:.2e} (tolerance {PARITY_TOLERANCE:.0e}); "
            "the conversion changed the model's behaviour."
        )


class LiteRTModel:
    """A converted classifier that several threads may call at once.

    An interpreter computes in its own input and output buffers, so calls must not
    interleave: one interpreter sits behind a lock. Gradio runs one prediction at a time
    unless told otherwise, and then the lock costs nothing. One interpreter per thread
    served 2-4 concurrent callers up to 15-30% faster on an idle machine (and slower on a
    busy one), but each costs about 25 MB and a first call, in every one of the up to 40
    worker threads Gradio starts.
    """

    def __init__(self, path: Path, num_threads: int = NUM_THREADS) -> None:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._run = interpreter.get_signature_runner()
        shapes = {name: details["shape"] for name, details in self._run.get_output_details().items()}
        self.num_features = int(shapes[FEATURES_OUTPUT][-1])
        self.num_classes = int(shapes[PROBABILITIES_OUTPUT][-1])
        self.activation_shape = tuple(int(n) for n in shapes[ACTIVATION_OUTPUT][1:]) if ACTIVATION_OUTPUT in shapes else None
        """``(h, w)`` of the activation map; None when the file predates it."""
        self.image_size = int(self._run.get_input_details()["pixels"]["shape"][1])
        """The side of the square photos the model takes."""
        self._lock = threading.Lock()
        # LiteRT applies XNNPACK at the first run and says so on stderr from C++ ("INFO: Created
        # TensorFlow Lite XNNPACK delegate for CPU."), which no setting silences: run once here, filtered.
        with cpp_log_filtered():
            self._run(pixels=np.zeros(self._run.get_input_details()["pixels"]["shape"], dtype=np.float32))

    def outputs(self, pixels: np.ndarray) -> ForwardPass:
        """The forward pass for uint8 ``(n, size, size, 3)`` pixels, one photo per interpreter call."""
        batch = pixels.astype(np.float32)
        features = np.empty((len(batch), self.num_features), dtype=np.float32)
        probabilities = np.empty((len(batch), self.num_classes), dtype=np.float32)
        shape = self.activation_shape
        activation = np.empty((len(batch), *shape), dtype=np.float32) if shape is not None else None
        with self._lock:
            for index in range(len(batch)):
                answer = self._run(pixels=batch[index : index + 1])
                features[index] = answer[FEATURES_OUTPUT][0]
                probabilities[index] = answer[PROBABILITIES_OUTPUT][0]
                if activation is not None:
                    activation[index] = answer[ACTIVATION_OUTPUT][0]
        return ForwardPass(features, probabilities, activation)

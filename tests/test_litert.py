"""The served ``model.tflite`` answers like the ``model.keras`` it was converted from, without TensorFlow."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from bird_model.artifacts import LITERT_FILE, ModelFolder, ModelFolderError
from bird_model.images import load_rgb
from bird_model.inference import Classifier
from bird_model.litert import QUANTIZATIONS, ForwardPass, LiteRTModel, export_litert, export_quantized
from bird_model.model import BASE_NAME, build_classifier, features_and_probabilities, serving_model
from tests.conftest import PARROTS, QUIET_ENV, ROOT, needs_parrots, solid_photo

TOLERANCE = 1e-4
CLASSES = ["blue bird", "green bird", "red bird"]


def random_model(image_size: int) -> keras.Model:
    """An untrained classifier whose probabilities differ from photo to photo.

    Keras's default (Glorot) initialisation shrinks MobileNetV2's activations block after
    block: untrained, it pools features of about 1e-12 and gives every photo the same
    uniform probabilities, which any conversion would match. He-scaled kernels keep them
    alive, so a comparison tests the whole network.
    """
    keras.utils.set_random_seed(7)
    model = build_classifier(num_classes=len(CLASSES), image_size=image_size, base_weights=None)
    rng = np.random.default_rng(7)
    for layer in [*model.get_layer(BASE_NAME).layers, model.get_layer("probabilities")]:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            shape = tuple(layer.kernel.shape)
            fan_in = math.prod(shape[:2] if isinstance(layer, keras.layers.DepthwiseConv2D) else shape[:-1])
            layer.kernel.assign(rng.normal(0.0, math.sqrt(2.0 / fan_in), shape).astype(np.float32))
    return model


def keras_outputs(model: keras.Model, pixels: np.ndarray) -> ForwardPass:
    """The reference outputs, checked to vary between photos so that matching them means something."""
    outputs = ForwardPass(*(np.asarray(output) for output in serving_model(model)(pixels.astype(np.float32), training=False)))
    assert outputs.probabilities.std(axis=0).max() > 0.01, "the test model gives every photo the same answer"
    return outputs


def assert_matches(served: LiteRTModel, model: keras.Model, pixels: np.ndarray) -> None:
    got, want = served.outputs(pixels), keras_outputs(model, pixels)
    for name in ("features", "probabilities", "activation"):
        assert getattr(got, name).shape == getattr(want, name).shape, name
    assert np.max(np.abs(got.features - want.features)) <= TOLERANCE
    assert np.max(np.abs(got.probabilities - want.probabilities)) <= TOLERANCE
    # A sum over all channels: compared relative to its largest value, as the overlay draws it.
    assert np.max(np.abs(got.activation - want.activation)) <= TOLERANCE * np.max(np.abs(want.activation))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[keras.Model, Path]:
    """A random-weights 64 px classifier and a model folder holding only its conversion."""
    model = random_model(64)
    folder = tmp_path_factory.mktemp("litert")
    export_litert(model, folder / LITERT_FILE)
    return model, folder


def served_folder(path: Path, classes: list[str]) -> ModelFolder:
    return ModelFolder(path=path, classes=classes, config={"image_size": 64}, metrics={})


def test_conversion_matches_keras_on_synthetic_photos(exported: tuple[keras.Model, Path]) -> None:
    model, folder = exported
    pixels = np.random.default_rng(1).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    served = LiteRTModel(folder / LITERT_FILE)
    assert served.num_classes == len(CLASSES)
    assert_matches(served, model, pixels)


@needs_parrots
def test_conversion_matches_keras_on_reference_photos(tmp_path: Path) -> None:
    model = random_model(96)
    export_litert(model, tmp_path / LITERT_FILE)
    photos = sorted(p for p in PARROTS.rglob("*") if p.is_file())[::16][:12]
    pixels = np.stack([load_rgb(photo, 96) for photo in photos])
    assert len(photos) == 12
    assert_matches(LiteRTModel(tmp_path / LITERT_FILE), model, pixels)


def test_classifier_serves_the_conversion_without_tensorflow(exported: tuple[keras.Model, Path], tmp_path: Path) -> None:
    model, folder = exported
    photo = solid_photo(tmp_path / "bird.png", (40, 160, 60), size=64)
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from bird_model.artifacts import ModelFolder
        from bird_model.inference import Classifier
        folder = ModelFolder(path=Path({str(folder)!r}), classes={CLASSES!r}, config={{"image_size": 64}}, metrics={{}})
        scores = Classifier(folder).classify({str(photo)!r}).scores
        print(json.dumps({{"scores": scores, "loaded": sorted({{"tensorflow", "keras"}} & set(sys.modules))}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **QUIET_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["loaded"] == []
    expected = np.asarray(model(load_rgb(photo, 64)[np.newaxis].astype(np.float32), training=False))[0]
    assert list(answer["scores"]) == [CLASSES[i] for i in np.argsort(expected)[::-1]]
    assert np.allclose([answer["scores"][name] for name in CLASSES], expected, atol=TOLERANCE)


def test_classifier_refuses_a_conversion_with_another_label_map(exported: tuple[keras.Model, Path]) -> None:
    _, folder = exported
    with pytest.raises(ModelFolderError, match="model.tflite predicts 3 classes but .*labels.json names 2"):
        Classifier(served_folder(folder, CLASSES[:2]))


def test_a_conversion_from_before_the_activation_map_is_still_served(
    exported: tuple[keras.Model, Path], tmp_path: Path
) -> None:
    """Models published before the overlay existed keep answering; only the overlay is missing."""
    import tensorflow as tf

    model, _ = exported
    old = tmp_path / LITERT_FILE
    signature = [tf.TensorSpec((1, 64, 64, 3), tf.float32, name="pixels")]
    features_and_probabilities(model).export(str(old), format="litert", input_signature=signature, verbose=False)
    classifier = Classifier(served_folder(tmp_path, CLASSES))
    photo = solid_photo(tmp_path / "bird.png", (40, 160, 60), size=64)
    explained = classifier.explain(photo)
    assert not classifier.explains and explained.overlay is None
    assert explained.prediction == classifier.classify(photo)


def test_overlay_is_the_photo_at_model_size(exported: tuple[keras.Model, Path], tmp_path: Path) -> None:
    _, folder = exported
    classifier = Classifier(served_folder(folder, CLASSES))
    overlay = classifier.explain(solid_photo(tmp_path / "bird.png", (40, 160, 60), size=64)).overlay
    assert classifier.explains and overlay is not None
    assert (overlay.size, overlay.mode) == ((64, 64), "RGB")


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_8_bit_conversions_are_a_third_of_the_float_file_and_answer_in_the_same_shapes(
    exported: tuple[keras.Model, Path], quantization: str, tmp_path: Path
) -> None:
    """How well they answer is measured at export (bird_model.quantization), not here: a random model has no accuracy."""
    model, folder = exported
    rng = np.random.default_rng(3)
    export_quantized(model, tmp_path / LITERT_FILE, quantization, rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8))
    assert (tmp_path / LITERT_FILE).stat().st_size < (folder / LITERT_FILE).stat().st_size / 3
    pixels = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    got, want = LiteRTModel(tmp_path / LITERT_FILE).outputs(pixels), LiteRTModel(folder / LITERT_FILE).outputs(pixels)
    for name in ("features", "probabilities", "activation"):
        assert getattr(got, name).shape == getattr(want, name).shape, name
    np.testing.assert_allclose(got.probabilities.sum(axis=1), 1.0, atol=0.02)

"""The original notebook's training recipe, rebuilt as the baseline of benchmarks/accuracy.py.

It differs from ours (``bird_model.model`` / ``bird_model.training``) where the issue says
the notebook did:

- input scaled to [0, 1] (pixels / 255), not MobileNetV2's [-1, 1];
- Keras' ``ImageDataGenerator`` augmentation, in both phases (rotation 20°, width and
  height shift 0.2, shear 0.2 (degrees, as that class reads it), zoom 0.2, horizontal
  flip, nearest fill). Augmenting in phase 1 means every photo goes through MobileNetV2
  every epoch, where ours computes the frozen base's features once;
- head: global average pooling, Dense 256 (ReLU), Dropout 0.5, softmax.

Everything else is ours, so the comparison isolates those three: the same two phases
(frozen base with Adam 1e-3, then the top 30% unfrozen by ``unfreeze_top`` with Adam
1e-4), epoch caps, batch size, early stopping and learning-rate schedule, seed, and
BatchNormalization kept in inference mode. Its early stopping counts any fall of validation
loss as progress in both phases, as the notebook's did: our phase 2's minimum improvement
(``TrainingOptions.fine_tune_min_delta``) is part of our recipe.

``ImageDataGenerator`` left Keras 3's public ``keras.preprocessing.image``; the class itself
(``keras.src.legacy.preprocessing.image.ImageDataGenerator``) is still exported as
``tf.keras.preprocessing.image.ImageDataGenerator``, which is what runs here: the real
legacy code, not an emulation. It needs SciPy for its affine transforms.

Run alone, it trains on the split ``train.py`` makes and writes its validation metrics,
which is how benchmarks/accuracy.py times it against ``train.py``:

    python benchmarks/original_recipe.py --data ../shared/datasets/parrots \\
        --base-weights ../shared/weights/mobilenet_v2_1.0_notop.proxy.weights.h5 --result original.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bird_model.data import load_dataset, split_dataset
from bird_model.evaluation import classification_metrics
from bird_model.inputs import Photos
from bird_model.model import BASE_NAME, unfreeze_top
from bird_model.pipeline import resolve_base_weights
from bird_model.settings import TrainingOptions

from bird_model.plateaus import LEARNING_RATE_FACTOR

AUGMENTATION = {
    "rotation_range": 20,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
}
HEAD_UNITS = 256
HEAD_DROPOUT = 0.5


def build_original_classifier(num_classes: int, image_size: int, base_weights: str | None) -> keras.Model:
    """MobileNetV2 (frozen) on [0, 1] input, GAP, Dense 256 ReLU, Dropout 0.5, softmax.

    The base is named like ours so that ``unfreeze_top`` finds it.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels_0_1")
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=base_weights, name=BASE_NAME
    )
    base.trainable = False
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(HEAD_UNITS, activation="relu")(x)
    x = keras.layers.Dropout(HEAD_DROPOUT)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="original_classifier")


def train_original(
    model: keras.Model,
    train: Photos,
    validation: Photos,
    options: TrainingOptions,
    verbose: int = 2,
) -> dict[str, dict[str, list[float]]]:
    """Fit ``model`` in place, both phases on ``ImageDataGenerator`` batches; return the histories.

    ``ImageDataGenerator.flow`` takes arrays, so the photos are read into memory first, as the
    original notebook held them (only ``train.py`` streams them).
    """
    keras.utils.set_random_seed(options.seed)
    generator = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255, **AUGMENTATION)
    batches = generator.flow(in_memory(train), train.labels, batch_size=options.batch_size, seed=options.seed)
    validation_data = (in_memory(validation) / 255.0, validation.labels)
    print(f"Original recipe phase 1: head only, base frozen, up to {options.epochs} epochs", flush=True)
    histories = {"phase1": _fit(model, batches, validation_data, options.learning_rate, options.epochs, options,
                                verbose)}
    if options.fine_tune_epochs > 0:
        unfreeze_top(model, options.fine_tune_fraction)
        print(f"Original recipe phase 2: top {options.fine_tune_fraction:.0%} of the base unfrozen, "
              f"up to {options.fine_tune_epochs} epochs", flush=True)
        histories["phase2"] = _fit(model, batches, validation_data, options.fine_tune_learning_rate,
                                   options.fine_tune_epochs, options, verbose)
    return histories


def _fit(
    model: keras.Model,
    batches: keras.utils.PyDataset,
    validation_data: tuple[np.ndarray, np.ndarray],
    learning_rate: float,
    epochs: int,
    options: TrainingOptions,
    verbose: int,
) -> dict[str, list[float]]:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(
        batches, validation_data=validation_data, epochs=epochs, callbacks=training_callbacks(options), verbose=verbose
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def training_callbacks(options: TrainingOptions) -> list[keras.callbacks.Callback]:
    """Keras' versions of our early stopping and learning-rate reduction (``bird_model.plateaus``), with our
    settings, so that only the recipe's own choices differ."""
    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=LEARNING_RATE_FACTOR,
                                          patience=max(1, options.patience // 2)),
    ]


def predict_original(model, photos: Photos) -> np.ndarray:
    """Class probabilities for ``photos``, scaled as the recipe trained."""
    return model.predict(photos.batches(32, with_labels=False).map(lambda pixels: pixels / 255.0), verbose=0)


def in_memory(photos: Photos) -> np.ndarray:
    """All of ``photos``' pixels in one float32 array of 0-255 values, read from the photo cache."""
    return np.concatenate([pixels.numpy() for pixels in photos.batches(64, with_labels=False)])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder-per-class photos")
    parser.add_argument("--base-weights", default="imagenet", help="imagenet, none or a weights file")
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write the validation metrics to")
    parser.add_argument("--epochs", type=int, default=TrainingOptions.epochs)
    parser.add_argument("--fine-tune-epochs", type=int, default=TrainingOptions.fine_tune_epochs)
    parser.add_argument("--batch-size", type=int, default=TrainingOptions.batch_size)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=TrainingOptions.seed)
    return parser.parse_args()


def main() -> None:
    """Photos to validation metrics, like ``train.py`` minus the model folder."""
    args = parse_args()
    started = time.monotonic()
    weights = resolve_base_weights(args.base_weights)
    options = TrainingOptions(
        epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size, seed=args.seed
    )
    dataset = load_dataset([args.data], args.image_size, show_progress=False)
    split = split_dataset(dataset, args.val_split, args.seed)
    train, validation = Photos.of(dataset, split.train), Photos.of(dataset, split.validation)
    model = build_original_classifier(len(dataset.classes), args.image_size, weights)
    histories = train_original(model, train, validation, options)
    metrics = classification_metrics(validation.labels, predict_original(model, validation), dataset.classes)
    seconds = time.monotonic() - started
    args.result.write_text(json.dumps({"seconds": seconds, "validation": asdict(metrics), "history": histories}, indent=2))
    print(f"Done in {seconds:.0f} s. Validation accuracy {metrics.accuracy:.2%} "
          f"({metrics.correct}/{metrics.count}), macro F1 {metrics.macro_f1:.3f}.")


if __name__ == "__main__":
    main()

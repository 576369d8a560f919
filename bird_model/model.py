"""The classifier: MobileNetV2 features, a small softmax head, and its own input scaling.

The model takes raw 0-255 RGB pixels. Augmentation and MobileNetV2's [-1, 1] scaling are
layers inside it, so the saved Keras model carries its preprocessing and a server can
never scale differently from training (augmentation layers are inactive at inference).
"""

from __future__ import annotations

from pathlib import Path

import keras

BASE_NAME = "mobilenetv2"
FEATURES_NAME = "features"
"""Name of the pooled-feature layer, the input of the head (and of later analyses)."""
HEAD_NAME = "probabilities"
"""Name of the softmax head, whose weights also weigh the class activation map."""


def build_classifier(num_classes: int, image_size: int, base_weights: str | None, dropout: float = 0.2) -> keras.Model:
    """MobileNetV2 (frozen) + global average pooling + dropout + softmax.

    ``base_weights`` is ``"imagenet"``, ``None`` for random weights, or a path to a weights
    file in the layout of ``MobileNetV2(include_top=False)``.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = augmentation()(inputs)
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1.0, name="scale_to_minus1_1")(x)
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=base_weights, name=BASE_NAME
    )
    base.trainable = False
    # training=False keeps BatchNormalization in inference mode, also once layers are
    # unfrozen: updating batch statistics from 16-photo batches would wreck the features.
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES_NAME)(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    # float32 even under mixed precision: a float16 softmax rounds small probabilities to 0.
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=HEAD_NAME, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="bird_classifier")


def augmentation() -> keras.Sequential:
    """Flip, small rotation, zoom and shift; Keras skips these layers outside training."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.05, fill_mode="reflect"),
            keras.layers.RandomZoom(0.15, fill_mode="reflect"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"),
        ],
        name="augmentation",
    )


def unfreeze_top(model: keras.Model, fraction: float) -> int:
    """Make the top ``fraction`` of the base's layers trainable, BatchNormalization excepted.

    Returns how many layers became trainable.
    """
    base = model.get_layer(BASE_NAME)
    base.trainable = True
    first_trainable = int(len(base.layers) * (1 - fraction))
    unfrozen = 0
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= first_trainable and not isinstance(layer, keras.layers.BatchNormalization)
        unfrozen += layer.trainable
    return unfrozen


def feature_extractor(model: keras.Model) -> keras.Model:
    """The classifier up to its pooled features, sharing its weights and its preprocessing.

    Out-of-distribution scores are distances in this space; cutting the trained model
    (rather than building a fresh base) guarantees the features are the fine-tuned ones.
    Called outside ``fit``, the augmentation layers are inactive.
    """
    return keras.Model(model.input, model.get_layer(FEATURES_NAME).output, name="bird_features")


def features_and_probabilities(model: keras.Model) -> keras.Model:
    """The classifier with its pooled features as a second output: one forward pass serves both."""
    outputs = [model.get_layer(FEATURES_NAME).output, model.output]
    return keras.Model(model.input, outputs, name="bird_features_and_probabilities")


def serving_model(model: keras.Model) -> keras.Model:
    """The classifier as served: pooled features, probabilities and the top class's activation map.

    One forward pass gives all three, so the "where the model looked" overlay costs a weighted
    sum over the last convolution's channels, not a second pass or gradients.
    """
    feature_map = model.get_layer(FEATURES_NAME).input
    activation = TopClassActivation(model.get_layer(HEAD_NAME), name="top_class_activation")(feature_map, model.output)
    outputs = [model.get_layer(FEATURES_NAME).output, model.output, activation]
    return keras.Model(model.input, outputs, name="bird_classifier_served")


class TopClassActivation(keras.layers.Layer):
    """Class activation map (Zhou et al., 2016) of the most probable class.

    The head is global average pooling followed by one dense layer, so its score for a class is
    the average over positions of the feature map weighted by that class's column of the dense
    kernel; the same weighted sum kept per position shows which parts of the photo made the
    score. ``(n, h, w, channels)`` and ``(n, classes)`` in, ``(n, h, w)`` out, in float32.
    """

    def __init__(self, head: keras.layers.Dense, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.head = head

    def call(self, feature_map: object, probabilities: object) -> object:
        ops = keras.ops
        kernel = ops.cast(self.head.kernel, "float32")
        # A mask product picks the top class's column with LiteRT's built-in operations (a gather
        # by index, and Keras's argmax, convert to TensorFlow ops the interpreter lacks); a tie
        # for the top, which float32 probabilities practically never have, sums the tied columns.
        top = ops.cast(ops.equal(probabilities, ops.max(probabilities, axis=-1, keepdims=True)), "float32")
        weights = ops.matmul(top, ops.transpose(kernel))
        return ops.sum(ops.cast(feature_map, "float32") * weights[:, None, None, :], axis=-1)


def serving_copy(model: keras.Model) -> keras.Model:
    """The same network and weights in float32, without optimizer state: what is saved and served.

    Rebuilt rather than cloned: a model trained under mixed precision (``bird_model.devices``)
    carries float16 layer policies in its config, and the saved Keras model and
    ``model.tflite`` must be the same float32 format whatever trained them. Its variables were
    float32 all along, so the weights copy exactly. Leaving out the optimizer also spares
    every download of the Space Adam's slots (about 10 MB).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build_classifier(int(model.output_shape[-1]), int(model.input_shape[1]), base_weights=None)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def save_keras_model(model: keras.Model, folder: Path) -> None:
    """Write the model into ``folder`` in Keras' directory layout (``config.json``, ``model.weights.h5``,
    ``metadata.json``: :data:`bird_model.artifacts.KERAS_FILES`).

    That layout, at a Hub repo's root, is what ``keras.saving.load_model("hf://OWNER/NAME")`` reads:
    the snippet the Hub shows for a ``library_name: keras`` model. Keras also makes an ``assets/``
    folder, empty for this model, which is removed so the folder holds only what it uses.
    """
    keras.saving.save_model(model, folder, zipped=False)
    assets = folder / "assets"
    if assets.is_dir() and not any(assets.iterdir()):
        assets.rmdir()


def load_keras_model(path: Path) -> keras.Model:
    """A saved model (a folder in Keras' layout, or a ``.keras`` file), never running code from it.

    ``safe_mode`` refuses the Lambda layers whose pickled code a stranger's file could carry; a
    published folder is a stranger's file to whoever downloads it.
    """
    return keras.saving.load_model(path, safe_mode=True, compile=False)

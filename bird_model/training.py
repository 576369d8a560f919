"""Two-phase fine-tuning: train the head on a frozen base, then the base's top layers gently.

Phase 1 (Adam 1e-3) fits the new head without disturbing pretrained features. While the
base is frozen its features of a photo never change, so they are computed once and the
head trains on them: seconds instead of a forward pass through MobileNetV2 every epoch.
Phase 2 (Adam 1e-4) unfreezes the top of MobileNetV2, with augmentation, so its features
adapt to birds; the low rate and BatchNormalization kept in inference mode stop it from
forgetting what it knew. Both phases stop early on validation loss and keep their best
weights; phase 2 counts only falls of at least ``fine_tune_min_delta`` as progress.
"""

from __future__ import annotations

import keras
import numpy as np

from bird_model.checkpoints import Checkpoint, Histories, Progress
from bird_model.console import step
from bird_model.devices import global_batch_size
from bird_model.inputs import Photos
from bird_model.model import feature_extractor, unfreeze_top
from bird_model.settings import TrainingOptions


def train_two_phases(
    model: keras.Model,
    train: Photos,
    validation: Photos,
    options: TrainingOptions,
    checkpoint: Checkpoint | None = None,
    verbose: int = 2,
) -> Histories:
    """Fit ``model`` in place and return each phase's history.

    Call it in the strategy's scope (``bird_model.devices``). With a ``checkpoint``, every epoch
    end is saved to it and a run it already holds goes on from there: a finished phase is not
    trained again, an unfinished one continues at its next epoch with its weights and optimizer
    state (early stopping's patience counts afresh from there).
    """
    keras.utils.set_random_seed(options.seed)
    progress = start = checkpoint.progress() if checkpoint else Progress()
    batch_size = global_batch_size(options.batch_size)
    if progress.phase == "phase1":
        print(f"Phase 1: head only on the frozen base's features, up to {options.epochs} epochs")
        extractor = feature_extractor(model)
        with step(f"Computing the frozen base's features of {len(train.labels) + len(validation.labels)} photos, once"):
            train_features = batched_predict(extractor, train)
            validation_features = batched_predict(extractor, validation)
        # The head model shares its layers with ``model``: fitting it trains the classifier's head.
        head_model = keras.Sequential(
            [keras.Input(train_features.shape[1:]), model.get_layer("dropout"), model.get_layer("probabilities")]
        )
        compile_model(head_model, options.learning_rate)
        recorder = _recorder(checkpoint, progress, model, head_model, restore=progress is start)
        head_model.fit(
            train_features,
            train.labels,
            validation_data=(validation_features, validation.labels),
            batch_size=batch_size,
            epochs=options.epochs,
            initial_epoch=progress.epochs_done,
            callbacks=[*training_callbacks(options), recorder],
            verbose=verbose,
        )
        progress = recorder.finish("phase2" if options.fine_tune_epochs > 0 else "done")
    if progress.phase == "phase2":
        train_data = train.batches(batch_size, shuffle_seed=options.seed)
        validation_data = validation.batches(batch_size)
        unfrozen = unfreeze_top(model, options.fine_tune_fraction)
        print(f"Phase 2: top {options.fine_tune_fraction:.0%} of the base ({unfrozen} layers) unfrozen, "
              f"up to {options.fine_tune_epochs} epochs")
        compile_model(model, options.fine_tune_learning_rate)
        recorder = _recorder(checkpoint, progress, model, model, restore=progress is start)
        # shuffle=False: the tf.data pipeline already reshuffles every epoch, with the seed.
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=options.fine_tune_epochs,
            initial_epoch=progress.epochs_done,
            callbacks=[*training_callbacks(options, min_delta=options.fine_tune_min_delta), recorder],
            shuffle=False,
            verbose=verbose,
        )
        progress = recorder.finish("done")
    elif checkpoint is not None and progress is start:
        model.set_weights(checkpoint.weights())
    return progress.histories


def _recorder(
    checkpoint: Checkpoint | None, progress: Progress, model: keras.Model, fitted: keras.Model, restore: bool
) -> EpochRecorder:
    """The callback that carries the phase on; first, when resuming, the saved weights and optimizer state back."""
    if checkpoint is not None and restore and (progress.epochs_done or progress.phase != "phase1"):
        model.set_weights(checkpoint.weights())
        state = checkpoint.optimizer_state()
        if state is not None:
            fitted.optimizer.build(fitted.trainable_variables)
            fitted.optimizer.load_own_variables(state)
    return EpochRecorder(checkpoint, progress, model, fitted)


class EpochRecorder(keras.callbacks.Callback):
    """Keeps the phase's history (the epochs before a resume included) and checkpoints every epoch end."""

    def __init__(self, checkpoint: Checkpoint | None, progress: Progress, model: keras.Model, fitted: keras.Model):
        super().__init__()
        self.checkpoint, self.progress, self.classifier, self.fitted = checkpoint, progress, model, fitted

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        phase = self.progress.histories.get(self.progress.phase, {})
        for name, value in (logs or {}).items():
            phase.setdefault(name, []).append(float(value))
        self.progress = Progress(self.progress.phase, epoch + 1, {**self.progress.histories, self.progress.phase: phase})
        store: dict[str, np.ndarray] = {}
        self.fitted.optimizer.save_own_variables(store)
        self._save(store)

    def finish(self, next_phase: str) -> Progress:
        """After ``fit`` (and early stopping's restore of the best weights): the phase is done."""
        self.progress = Progress(next_phase, 0, self.progress.histories)
        self._save(None)
        return self.progress

    def _save(self, optimizer_state: dict[str, np.ndarray] | None) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(self.progress, self.classifier.get_weights(), optimizer_state)


def batched_predict(model: keras.Model, photos: Photos, batch_size: int = 32) -> np.ndarray | list[np.ndarray]:
    """The model's output(s) for ``photos``, streamed from the photo cache in batches to bound memory."""
    return model.predict(photos.batches(batch_size, with_labels=False), verbose=0)


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """Adam and cross-entropy on class indices; shared with the original recipe's benchmark."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def training_callbacks(options: TrainingOptions, min_delta: float = 0.0) -> list[keras.callbacks.Callback]:
    """Stop once validation loss has not fallen by ``min_delta`` for ``patience`` epochs, with the best
    weights back; slow down on a plateau first."""
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=options.patience, min_delta=min_delta, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, options.patience // 2)),
    ]


def plain_history(history: dict[str, list]) -> dict[str, list[float]]:
    """JSON-ready copy of a Keras history."""
    return {name: [float(value) for value in values] for name, values in history.items()}

"""Two-phase fine-tuning: train the head on a frozen base, then the base's top layers gently.

Phase 1 (Adam 1e-3) fits the new head without disturbing pretrained features. While the
base is frozen its features of a photo never change, so they are computed once and the
head trains on them: seconds instead of a forward pass through MobileNetV2 every epoch.
Phase 2 (Adam 1e-4) unfreezes the top of MobileNetV2, with augmentation, so its features
adapt to birds; the low rate and BatchNormalization kept in inference mode stop it from
forgetting what it knew. Both phases stop early on validation loss and keep their best
weights; phase 2 counts only falls of at least ``fine_tune_min_delta`` as progress
(``bird_model.plateaus``).

Both phases run one loop of our own rather than ``Model.fit``: Keras 3's ``fit`` does not run
under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), and a loop whose whole state
is ours can checkpoint all of it. Each step is ``strategy.run`` inside a ``tf.function``, the
same code for the default strategy, ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy``;
each worker reads only its own share of the photos (``Photos.shard``), and each replica's loss
is divided by the step's global batch, so the gradients that the optimizer sums over replicas
are those of the mean over every photo of the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from bird_model.checkpoints import Checkpoint, Histories, Progress
from bird_model.cluster import ClusterError, Role, WorkerLostError
from bird_model.console import step
from bird_model.inputs import Photos, epoch_order
from bird_model.model import feature_extractor, unfreeze_top
from bird_model.plateaus import EarlyStopping, LearningRate
from bird_model.settings import TrainingOptions

def make_reproducible(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow's ops deterministic.

    Call it before building the model: its layers draw their initial weights and their random
    streams' seeds (augmentation, dropout) when they are created.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@contextmanager
def worker_lost(role: Role) -> Iterator[None]:
    """In a multi-worker run, the error TensorFlow raises when another worker stops answering, as one line.

    ``MultiWorkerMirroredStrategy`` fails a step that waits on a dead worker (after
    ``cluster.WORKER_TIMEOUT_S`` at most) with one of these errors, three screens of traceback deep.
    """
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError) as error:
        if not role.distributed:
            raise
        reason = (str(error.message).strip().splitlines() or [type(error).__name__])[0]
        raise WorkerLostError(
            f"{role.describe()}: another worker stopped answering ({type(error).__name__}: {reason[:200]}). Start every "
            "worker again; the chief's checkpoint resumes on its machine with --resume and without TF_CONFIG."
        ) from None


def train_two_phases(
    model: keras.Model,
    train: Photos,
    validation: Photos,
    options: TrainingOptions,
    checkpoint: Checkpoint | None = None,
    role: Role = Role(),
) -> Histories:
    """Fit ``model`` in place and return each phase's history.

    Call it in the strategy's scope (``bird_model.devices``), on every worker with the same
    photos: each trains on its ``role``'s share. With a ``checkpoint`` (the chief's), every
    epoch end is saved to it and a run it already holds goes on exactly as if never stopped.
    """
    progress = checkpoint.progress() if checkpoint else Progress()
    saved = checkpoint.arrays() if checkpoint and (progress.epochs_done or progress.phase != "phase1") else {}
    if saved:
        _assign(model.variables, saved, "model")
    if role.workers > 1 and min(len(train), len(validation)) < role.workers:
        raise ClusterError(f"{role.workers} workers need at least one training and one validation photo each "
                           f"({len(train)} training, {len(validation)} validation photos).")
    total_train, total_validation = len(train), len(validation)
    train, validation = train.shard(role.index, role.workers), validation.shard(role.index, role.workers)
    if progress.phase == "phase1":
        print(f"Phase 1: head only on the frozen base's features, up to {options.epochs} epochs")
        extractor = feature_extractor(model)
        shared = " (this worker's share)" if role.distributed else ""
        with step(f"Computing the frozen base's features of {len(train) + len(validation)} photos{shared}, once"):
            train_features, validation_features = _features(extractor, train), _features(extractor, validation)
        # The head model shares its layers with ``model``: training it trains the classifier's head.
        head_model = keras.Sequential(
            [keras.Input(train_features.shape[1:]), model.get_layer("dropout"), model.get_layer("probabilities")]
        )
        progress = _train_phase(
            Phase(1, options.epochs, options.learning_rate, 0.0, "phase2" if options.fine_tune_epochs > 0 else "done"),
            head_model, model, options, progress, checkpoint, saved, role,
            Share(len(train), total_train, lambda at, real, size: _arrays(train_features, train.labels, at, real, size)),
            Share(len(validation), total_validation,
                  lambda at, real, size: _arrays(validation_features, validation.labels, at, real, size)),
        )
    if progress.phase == "phase2":
        unfrozen = unfreeze_top(model, options.fine_tune_fraction)
        print(f"Phase 2: top {options.fine_tune_fraction:.0%} of the base ({unfrozen} layers) unfrozen, "
              f"up to {options.fine_tune_epochs} epochs")
        progress = _train_phase(
            Phase(2, options.fine_tune_epochs, options.fine_tune_learning_rate, options.fine_tune_min_delta, "done"),
            model, model, options, progress, checkpoint, saved, role,
            Share(len(train), total_train, lambda at, real, size: _photos(train, at, real).batches(size)),
            Share(len(validation), total_validation, lambda at, real, size: _photos(validation, at, real).batches(size)),
        )
    return progress.histories


@dataclass(frozen=True)
class Phase:
    """What sets one phase apart: its number, epochs, learning rate, progress threshold and what follows it."""

    number: int
    epochs: int
    learning_rate: float
    min_delta: float
    next_phase: str

    @property
    def name(self) -> str:
        return f"phase{self.number}"


def _train_phase(
    phase: Phase,
    fitted: keras.Model,
    classifier: keras.Model,
    options: TrainingOptions,
    progress: Progress,
    checkpoint: Checkpoint | None,
    saved: dict[str, np.ndarray],
    role: Role,
    train: Share,
    validation: Share,
) -> Progress:
    """Train ``fitted`` (the classifier, or its head) for one phase, from ``progress`` on; the phase's
    best weights end in ``classifier``. Returns the progress at the next phase's start."""
    strategy = tf.distribute.get_strategy()
    optimizer = _optimizer(phase.learning_rate)
    optimizer.build(fitted.trainable_variables)
    stopping = progress.stopping or EarlyStopping(options.patience, phase.min_delta)
    rate = progress.learning_rate or LearningRate(phase.learning_rate, patience=max(1, options.patience // 2))
    best = None
    if progress.epochs_done:
        _assign(optimizer.variables, saved, "optimizer")
        best = _named(saved, "best")
    steps = Steps(strategy, fitted, optimizer)
    history = dict(progress.histories.get(phase.name, {}))
    epoch = progress.epochs_done
    while epoch < phase.epochs and not stopping.should_stop:
        started = time.monotonic()
        optimizer.learning_rate = rate.rate
        order = epoch_order(train.size, options.seed, phase.number, epoch)
        trained = _run(strategy, steps.train, train, order, role.workers, options.batch_size)
        validated = _run(strategy, steps.evaluate, validation, np.arange(validation.size), role.workers, options.batch_size)
        epoch += 1
        logs = {"loss": trained.loss, "accuracy": trained.accuracy, "val_loss": validated.loss,
                "val_accuracy": validated.accuracy, "learning_rate": rate.rate}
        for name, value in logs.items():
            history.setdefault(name, []).append(float(value))
        print(f"Phase {phase.number} epoch {epoch}/{phase.epochs}: loss {trained.loss:.4f}, accuracy "
              f"{trained.accuracy:.2%}, validation loss {validated.loss:.4f}, accuracy {validated.accuracy:.2%} "
              f"({time.monotonic() - started:.1f} s)", flush=True)
        stopping = stopping.after(epoch, validated.loss)
        if stopping.improved:
            best = classifier.get_weights()
        lowered = rate.after(validated.loss)
        if lowered.rate < rate.rate and not stopping.should_stop and epoch < phase.epochs:
            print(f"Phase {phase.number}: validation loss flat for {rate.patience} epoch(s), learning rate "
                  f"{rate.rate:.2g} -> {lowered.rate:.2g} from epoch {epoch + 1}")
        rate = lowered
        progress = Progress(phase.name, epoch, {**progress.histories, phase.name: history}, stopping, rate)
        if checkpoint is not None:
            checkpoint.save(progress, {**_arrays_of(classifier.variables, "model"),
                                       **_arrays_of(optimizer.variables, "optimizer"), **_prefixed(best, "best")})
    if best is not None:
        classifier.set_weights(best)
    kept = stopping.best_epoch or epoch  # no epoch improved (a NaN loss): the last one's weights stay
    if stopping.should_stop:
        print(f"Phase {phase.number} stopped at epoch {epoch}, kept epoch {kept}")
    elif epoch:
        print(f"Phase {phase.number} ran its {epoch} epoch(s), kept epoch {kept}")
    history["kept_epoch"] = kept
    progress = Progress(phase.next_phase, 0, {**progress.histories, phase.name: history})
    if checkpoint is not None:
        checkpoint.save(progress, _arrays_of(classifier.variables, "model"))
    return progress


class Totals:
    """Summed loss, correct answers and count over an epoch's photos, on every replica of every worker."""

    def __init__(self, sums: np.ndarray):
        self.loss_sum, self.correct, self.count = (float(value) for value in sums)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1.0)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1.0)


class Steps:
    """One training step and one evaluation step, each ``strategy.run`` on every replica in a ``tf.function``.

    Both return the step's ``[loss sum, correct, count]`` summed over all replicas, so every
    worker sees the same epoch metrics and takes the same early-stopping decisions.
    """

    def __init__(self, strategy: tf.distribute.Strategy, model: keras.Model, optimizer: keras.optimizers.Optimizer):
        self.strategy, self.model, self.optimizer = strategy, model, optimizer
        self.train = tf.function(lambda batch: self._summed(self._train_replica, batch))
        self.evaluate = tf.function(lambda batch: self._summed(self._evaluate_replica, batch))

    def _summed(self, replica_step: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], batch: tuple) -> tf.Tensor:
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica_step, args=batch), axis=None)

    def _train_replica(self, inputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        real = tf.cast(labels != PADDING, tf.float32)
        # The global batch, counted: the last step of an epoch is short, its batches padded.
        count = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(real))
        with tf.GradientTape() as tape:
            probabilities = self.model(inputs, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), probabilities) * real
            loss = tf.reduce_sum(losses) / tf.maximum(count, 1.0)
        gradients = tape.gradient(self.optimizer.scale_loss(loss), self.model.trainable_variables)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return _sums(labels, probabilities, losses, real)

    def _evaluate_replica(self, inputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        real = tf.cast(labels != PADDING, tf.float32)
        probabilities = self.model(inputs, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), probabilities) * real
        return _sums(labels, probabilities, losses, real)


def _sums(labels: tf.Tensor, probabilities: tf.Tensor, losses: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
    correct = tf.cast(tf.equal(tf.argmax(probabilities, axis=-1, output_type=labels.dtype), labels), tf.float32)
    return tf.stack([tf.reduce_sum(tf.cast(losses, tf.float32)), tf.reduce_sum(correct * real), tf.reduce_sum(real)])


PADDING = -1
"""The label of an example that only fills a batch: no loss, no gradient, not counted."""


@dataclass(frozen=True)
class Share:
    """This worker's share of one side of the split: ``size`` of the ``total`` examples of all workers,
    and how to read them (positions in the share, which of them are real, batch size) as batches."""

    size: int
    total: int
    read: Callable[[np.ndarray, np.ndarray, int], tf.data.Dataset]

    def plan(self, order: np.ndarray, workers: int, per_step: int) -> tuple[np.ndarray, np.ndarray]:
        """The positions this worker reads in an epoch, in ``order``, and which of them are real.

        Every worker takes the same number of steps, and every replica a full batch at every
        step (an empty one breaks MobileNetV2's graph), so the share is padded, by repeating it,
        to the steps the largest share needs; padding is labelled ``PADDING`` and weighs nothing.
        """
        steps = -(-(-(-self.total // workers)) // per_step)
        return np.resize(order, steps * per_step), np.arange(steps * per_step) < self.size


def _run(strategy: tf.distribute.Strategy, step_function: Callable, share: Share, order: np.ndarray, workers: int,
         batch_size: int) -> Totals:
    """One pass of ``step_function`` over this worker's ``share`` in ``order``, in step with the other workers."""
    local_replicas = int(strategy.num_replicas_in_sync) // workers
    positions, real = share.plan(order, workers, batch_size * local_replicas)
    # One input pipeline per worker: its batches go to its replicas in turn.
    distributed = strategy.distribute_datasets_from_function(lambda context: share.read(positions, real, batch_size))
    total = np.zeros(3)
    for batch in distributed:
        total += step_function(batch).numpy()
    return Totals(total)


def _optimizer(learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam; under mixed precision wrapped in loss scaling (what ``compile`` would do), so float16 gradients do not vanish."""
    optimizer = keras.optimizers.Adam(learning_rate)
    if keras.config.dtype_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


@tf.function
def _call(model: keras.Model, inputs: tf.Tensor) -> tf.Tensor:
    return model(inputs, training=False)


def _features(extractor: keras.Model, photos: Photos, batch_size: int = 32) -> np.ndarray:
    """The frozen base's features of ``photos``, on this worker alone (no other worker takes part)."""
    outputs = [_call(extractor, pixels).numpy() for pixels in photos.batches(batch_size, with_labels=False)]
    width = int(extractor.output_shape[-1])
    return np.concatenate(outputs) if outputs else np.zeros((0, width), dtype=np.float32)


def _arrays(inputs: np.ndarray, labels: np.ndarray, positions: np.ndarray, real: np.ndarray,
            batch_size: int) -> tf.data.Dataset:
    """Batches of the in-memory ``inputs`` at ``positions``, labelled ``PADDING`` where not ``real``."""
    return tf.data.Dataset.from_tensor_slices((inputs[positions], np.where(real, labels[positions], PADDING))).batch(batch_size)


def _photos(photos: Photos, positions: np.ndarray, real: np.ndarray) -> Photos:
    """The ``photos`` at ``positions``, labelled ``PADDING`` where not ``real``."""
    chosen = photos.reordered(positions)
    return replace(chosen, labels=np.where(real, chosen.labels, PADDING))


def _arrays_of(variables: list, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.{index}": np.asarray(variable.numpy()) for index, variable in enumerate(variables)}


def _prefixed(arrays: list[np.ndarray] | None, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.{index}": array for index, array in enumerate(arrays or [])}


def _named(saved: dict[str, np.ndarray], prefix: str) -> list[np.ndarray] | None:
    """The arrays saved under ``prefix``, in order; None if there are none."""
    count = sum(1 for name in saved if name.startswith(f"{prefix}."))
    return [saved[f"{prefix}.{index}"] for index in range(count)] or None


def _assign(variables: list, saved: dict[str, np.ndarray], prefix: str) -> None:
    """Put the checkpoint's arrays back into ``variables``, which must be the very ones that were saved."""
    arrays = _named(saved, prefix) or []
    if len(arrays) != len(variables):
        raise ValueError(f"the checkpoint holds {len(arrays)} {prefix} variables, the run has {len(variables)}")
    for variable, array in zip(variables, arrays):
        variable.assign(array)


def batched_predict(model: keras.Model, photos: Photos, batch_size: int = 32) -> np.ndarray | list[np.ndarray]:
    """The model's output(s) for ``photos``, streamed from the photo cache in batches to bound memory."""
    return model.predict(photos.batches(batch_size, with_labels=False), verbose=0)

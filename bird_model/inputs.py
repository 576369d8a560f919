"""The training input: photos streamed from the photo cache through tf.data, a batch at a time.

Training and every prediction over the dataset (phase 1's frozen-base features, the outlier
detector, the baseline, the metrics) read the same way: file names and labels are the only
per-photo data in memory, and tf.data reads, decodes (``decode_raw``: no Python per photo)
and batches the cached pixels in parallel, ahead of the model. Memory so stays flat however
many photos a dataset has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from bird_model.data import Dataset


@dataclass(frozen=True)
class Photos:
    """Some of a dataset's photos: their cache entries and class indices, in the same order."""

    files: tuple[str, ...]
    labels: np.ndarray
    image_size: int

    @classmethod
    def of(cls, dataset: Dataset, indices: list[int]) -> Photos:
        """The photos at ``indices`` of ``dataset`` (a split's side), labelled by class index."""
        samples = [dataset.samples[index] for index in indices]
        return cls(
            files=tuple(str(dataset.cache.entry(sample.sha256)) for sample in samples),
            labels=np.array([dataset.classes.index(sample.label) for sample in samples], dtype=np.int64),
            image_size=dataset.cache.image_size,
        )

    def __len__(self) -> int:
        return len(self.files)

    def shard(self, index: int, count: int) -> Photos:
        """Every ``count``-th photo from ``index``: worker ``index``'s share of a ``count``-worker run."""
        return self.reordered(np.arange(index, len(self), count))

    def reordered(self, order: np.ndarray) -> Photos:
        """The photos at positions ``order`` (an epoch's shuffle: :func:`epoch_order`)."""
        return Photos(tuple(self.files[int(position)] for position in order), self.labels[order], self.image_size)

    def batches(self, batch_size: int, with_labels: bool = True) -> tf.data.Dataset:
        """Float32 ``(batch, size, size, 3)`` pixels in 0-255, in order, with the labels unless ``with_labels`` is False."""
        files = tf.data.Dataset.from_tensor_slices(tf.constant(self.files, dtype=tf.string))
        dataset = tf.data.Dataset.zip(files, tf.data.Dataset.from_tensor_slices(self.labels))
        dataset = dataset.map(self._read, num_parallel_calls=tf.data.AUTOTUNE)
        if not with_labels:
            dataset = dataset.map(lambda pixels, label: pixels)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def arrays(self, batch_size: int = 32) -> Iterator[np.ndarray]:
        """The photos as uint8 numpy batches, in order, for code outside TensorFlow (the LiteRT models)."""
        for batch in self.batches(batch_size, with_labels=False):
            yield batch.numpy().astype(np.uint8)

    def _read(self, file: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One cache entry's pixels (its trailing checksum cut off; the dataset check verified it)."""
        size = self.image_size
        raw = tf.io.decode_raw(tf.io.read_file(file), tf.uint8)[: size * size * 3]
        return tf.cast(tf.reshape(raw, (size, size, 3)), tf.float32), label


def epoch_order(count: int, seed: int, phase: int, epoch: int) -> np.ndarray:
    """The shuffle of ``count`` training examples for one epoch (0-based) of one phase.

    A function of its arguments alone, not of a generator's state: a resumed run shuffles its
    next epoch exactly as the uninterrupted run did, with nothing but the epoch to store.
    """
    return np.random.default_rng([seed, phase, epoch]).permutation(count)

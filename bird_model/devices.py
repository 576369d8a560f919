"""Where training runs: the ``tf.distribute`` strategy and the numeric precision, chosen in one place.

- ``TF_CONFIG`` set: ``MultiWorkerMirroredStrategy``, one replica per device on every machine
  it names (the same ``train.py`` command runs on each; ``bird_model.cluster`` says which is the chief).
- Several GPUs (or, for tests, several logical CPUs from ``BIRD_SPLIT_CPU``): ``MirroredStrategy``.
- Otherwise TensorFlow's default strategy: one device, nothing distributed.

On a GPU the layers compute in float16 (``mixed_float16``: about twice the throughput on tensor
cores) and keep float32 variables; the softmax stays float32 (``bird_model.model``). What is
saved is always a float32 model (``model.serving_copy``), whatever trained it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from bird_model.cluster import TF_CONFIG_ENV, WORKER_TIMEOUT_S

SPLIT_CPU_ENV = "BIRD_SPLIT_CPU"
"""Split the CPU into this many logical devices, so the MirroredStrategy path runs without GPUs (tests, CI)."""
PACK_BYTES = 32 << 20
"""Gradients per all-reduce message across workers: MobileNetV2's unfrozen top (about 8 MB) in one."""
MIXED = "mixed_float16"
FLOAT32 = "float32"


@dataclass(frozen=True)
class Devices:
    strategy: tf.distribute.Strategy
    precision: str

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> str:
        """One line for the run's output; TensorFlow's default strategy has only a private class name."""
        name = type(self.strategy).__name__
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            name = "MultiWorkerMirroredStrategy"  # whose class TensorFlow names CollectiveAllReduceStrategy
        elif name.startswith("_Default"):
            name = "one device (TensorFlow's default strategy)"
        return f"Devices: {name}, {self.replicas} replica(s), precision {self.precision}"


def choose_devices() -> Devices:
    """Pick the strategy and set Keras' dtype policy for the models built from now on.

    Call it before any other TensorFlow call: ``MultiWorkerMirroredStrategy`` configures the
    collective ops at TensorFlow's start, and listing devices first starts it without them.
    """
    if os.environ.get(TF_CONFIG_ENV):
        # A step that waits longer than this for another worker fails instead of hanging; the gradients
        # travel packed into few messages, not one per variable (a hundred in phase 2).
        options = tf.distribute.experimental.CommunicationOptions(
            bytes_per_pack=PACK_BYTES, timeout_seconds=WORKER_TIMEOUT_S)
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        gpus = tf.config.list_logical_devices("GPU")
    else:
        _split_cpu(int(os.environ.get(SPLIT_CPU_ENV) or 1))
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy([device.name for device in gpus])
        elif not gpus and len(cpus) > 1:
            strategy = tf.distribute.MirroredStrategy([device.name for device in cpus])
        else:
            strategy = tf.distribute.get_strategy()
    precision = MIXED if gpus else FLOAT32
    keras.config.set_dtype_policy(precision)
    return Devices(strategy=strategy, precision=precision)


def _split_cpu(count: int) -> None:
    """Make ``count`` logical CPU devices; must happen before TensorFlow first touches a device."""
    if count > 1:
        [cpu] = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)

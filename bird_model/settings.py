"""What a training run is configured with; light to import, so options are checked before TensorFlow loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 30
    fine_tune_epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    fine_tune_fraction: float = 0.3
    patience: int = 5
    seed: int = 42


@dataclass(frozen=True)
class RunSettings:
    output: Path
    base_weights: str = "imagenet"
    image_size: int = 224
    validation_fraction: float = 0.2
    overwrite: bool = False
    training: TrainingOptions = field(default_factory=TrainingOptions)

"""Every default of training and serving, in one place; light to import, so options are checked before TensorFlow loads.

``train.py`` and ``app.py`` take their option defaults from these dataclasses, and README.md's
option tables show the same values (``tests/test_settings.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA = "kaggle:muhammadadeelkaggle/birds-dataset"
"""What ``train.py`` trains on without ``--data``: the original birds dataset on Kaggle."""


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 30
    fine_tune_epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    fine_tune_fraction: float = 0.3
    patience: int = 5
    fine_tune_min_delta: float = 0.005
    """Smallest fall of validation loss that counts as progress in phase 2 (early stopping).

    Phase 2 epochs are the costly ones (a forward and backward pass through MobileNetV2), and on
    the reference parrots its validation loss moved by less than this for most of its 15 epochs:
    on 40 validation photos 0.005 is one photo's log-loss changing by 0.2, noise rather than
    learning. Phase 1 (seconds in all) keeps stopping on any improvement."""
    seed: int = 42


@dataclass(frozen=True)
class RunSettings:
    output: Path
    base_weights: str = "imagenet"
    image_size: int = 224
    validation_fraction: float = 0.2
    overwrite: bool = False
    resume: bool = False
    """Continue the interrupted run of this output from its checkpoint (:mod:`bird_model.checkpoints`)."""
    unknown_pass_rate: float = 0.97
    """Share of new in-distribution photos that should pass the "not one of my birds" check;
    the unknown threshold is calibrated on the validation photos for it (:mod:`bird_model.ood`)."""
    training: TrainingOptions = field(default_factory=TrainingOptions)


@dataclass(frozen=True)
class ServingSettings:
    top_k: int = 3
    """Classes shown per photo (capped at the class count)."""
    revision: str = "main"
    """Branch, tag or commit of a Hub model."""

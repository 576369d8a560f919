"""Every default of training and serving, in one place; light to import, so options are checked before TensorFlow loads.

``train.py`` and ``app.py`` take their option defaults from these dataclasses, and README.md's
option tables show the same values (``tests/test_settings.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA = "kaggle:muhammadadeelkaggle/birds-dataset"
"""What ``train.py`` trains on without ``--data``: the original birds dataset on Kaggle."""

DEFAULT_LICENSE = "unknown"
"""The model card's ``license`` without ``--license``: a model inherits its photos' terms,
which only the trainer knows, so the card does not guess. Any Hub license id is accepted
(https://huggingface.co/docs/hub/repositories-licenses)."""


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
    unknown_pass_rate: float = 0.97
    """Share of new in-distribution photos that should pass the "not one of my birds" check;
    the unknown threshold is calibrated on the validation photos for it (:mod:`bird_model.ood`)."""
    model_name: str | None = None
    """The card's title and ``model_name``; None derives it from the first data source
    (``parrots`` -> ``parrots-classifier``: :func:`bird_model.card.default_model_name`)."""
    license: str = DEFAULT_LICENSE
    training: TrainingOptions = field(default_factory=TrainingOptions)


@dataclass(frozen=True)
class ServingSettings:
    top_k: int = 3
    """Classes shown per photo (capped at the class count)."""
    revision: str = "main"
    """Branch, tag or commit of a Hub model."""

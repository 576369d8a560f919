"""Every default of training and serving, in one place; light to import, so options are checked before TensorFlow loads.

``train.py`` and ``app.py`` take their option defaults from these dataclasses, and README.md's
option tables show the same values (``tests/test_settings.py`` compares them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA = "kaggle:muhammadadeelkaggle/birds-dataset"
"""What ``train.py`` trains on without ``--data``: the original birds dataset on Kaggle."""

CACHE_ENV = "BIRD_CACHE_DIR"
"""Environment variable that moves the photo cache (``train.py --cache-dir`` overrides it in turn)."""


def default_cache_dir() -> Path:
    """Where decoded photos are cached (:mod:`bird_model.cache`): ``$BIRD_CACHE_DIR``, else the user's cache folder.

    The user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``) rather than the project's: the
    same photos trained from several clones or notebooks are decoded once, and cleaning caches
    removes it like any other.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bird-model" / "photos"


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
    cache_dir: Path = field(default_factory=default_cache_dir)
    """Decoded photos, reused by later runs (:func:`default_cache_dir`)."""
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

"""Early stopping and learning-rate reduction on validation loss, as state a checkpoint can hold.

Keras' callbacks keep their counters and the best weights in memory, so a resumed run started
them over and ended elsewhere than the uninterrupted one (issue #21). Here both are plain
records: ``to_json`` goes into the checkpoint's state file, and the best weights, which only
:class:`EarlyStopping`'s owner holds, into its arrays. The rules are Keras' own (an epoch
improves when validation loss falls by more than ``min_delta``; stop after ``patience`` epochs
without one; cut the rate by ``factor`` after ``patience`` flat epochs, then count afresh).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

LEARNING_RATE_FACTOR = 0.3
LEARNING_RATE_MIN_DELTA = 1e-4
"""Keras' ``ReduceLROnPlateau`` defaults, which training used before this module."""


@dataclass(frozen=True)
class EarlyStopping:
    """Stop once validation loss has not fallen by more than ``min_delta`` for ``patience`` epochs."""

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int = 0
    """1-based epoch of the phase whose weights are kept; 0 before the first epoch."""
    wait: int = 0

    def after(self, epoch: int, val_loss: float) -> EarlyStopping:
        """The state after ``epoch`` (1-based) ended with ``val_loss``."""
        if val_loss < self.best - self.min_delta:
            return replace(self, best=val_loss, best_epoch=epoch, wait=0)
        return replace(self, wait=self.wait + 1)

    @property
    def improved(self) -> bool:
        """The last epoch is the best so far: its weights are the ones to keep."""
        return self.wait == 0

    @property
    def should_stop(self) -> bool:
        return self.wait >= self.patience

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> EarlyStopping:
        return cls(**saved)


@dataclass(frozen=True)
class LearningRate:
    """The learning rate, cut by ``factor`` once validation loss has been flat for ``patience`` epochs."""

    rate: float
    patience: int
    factor: float = LEARNING_RATE_FACTOR
    min_delta: float = LEARNING_RATE_MIN_DELTA
    best: float = math.inf
    wait: int = 0

    def after(self, val_loss: float) -> LearningRate:
        """The state after an epoch that ended with ``val_loss``; ``rate`` is the next epoch's."""
        if val_loss < self.best - self.min_delta:
            return replace(self, best=val_loss, wait=0)
        if self.wait + 1 >= self.patience:
            return replace(self, rate=self.rate * self.factor, wait=0)
        return replace(self, wait=self.wait + 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> LearningRate:
        return cls(**saved)

"""Saying "not one of my birds": how far a photo's features lie from the training classes.

A softmax always spreads its whole probability over the known classes, so a cat or a
landscape can still come out as "macaw, 90%". Distances in the pooled MobileNetV2 feature
space do not have that blind spot: a photo unlike every class is far from all of them.

Features are L2-normalised first (the direction of a feature vector carries the content,
its length mostly the contrast and size of what is in view), then scored by the squared
distance to the nearest class mean (``centroid``). The saved detector (``ood.npz``) also
has room for a shared covariance in low-rank form (``components``, empty here); the
Ledoit-Wolf Mahalanobis variant that fills it was weighed against the centroid score in
``benchmarks/ood.py`` (``benchmarks/ood_methods.py``; results in benchmarks/README.md, "Out of
distribution") and is not part of the product.

The threshold comes from validation photos, which the class means never saw: training
photos sit closer to the means than any new photo will.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

METHOD = "centroid"
"""Picked on the parrots benchmark (``benchmarks/ood.py``, benchmarks/README.md "Out of distribution"):
it needs no covariance estimate from a few hundred photos."""


SCORE_BLOCK_BYTES = 32 * 2**20
"""Size of one block of photo-to-class differences in :meth:`OutlierDetector.score`."""


@dataclass(frozen=True)
class OutlierDetector:
    """Everything needed to score features at serving time, with no training data at hand."""

    method: str
    class_means: np.ndarray
    """``(classes, features)`` means of the L2-normalised training features."""
    components: np.ndarray
    """``(features, r)`` orthonormal directions of within-class spread; ``r = 0`` for ``centroid``."""
    component_weights: np.ndarray
    """``(r,)`` share of each direction's squared length that the covariance explains away."""
    isotropic_variance: float
    """Variance assumed in every direction (the shrinkage target); scales the score."""
    shrinkage: float
    """Ledoit-Wolf weight of the isotropic target, kept to report how the fit went."""
    threshold: float
    """Scores above this are unknown."""

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared distance to the nearest class; higher means more unlike the training photos.

        Scored a block of photos at a time: every photo's difference from every class mean is
        ``photos × classes × features`` float64s, 1.2 GB for 600 validation photos of 100 classes
        at once, and training scores its whole validation split.
        """
        features = normalise(np.atleast_2d(features))
        rows = max(1, SCORE_BLOCK_BYTES // (self.class_means.size * 8))
        blocks = [self._nearest(features[start : start + rows]) for start in range(0, len(features), rows)]
        return np.concatenate(blocks) if blocks else np.empty(0)

    def _nearest(self, features: np.ndarray) -> np.ndarray:
        differences = features[:, np.newaxis, :] - self.class_means[np.newaxis]
        explained = ((differences @ self.components) ** 2 * self.component_weights).sum(axis=-1)
        distances = ((differences**2).sum(axis=-1) - explained) / self.isotropic_variance
        return distances.min(axis=1)

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: Path) -> None:
        arrays = {field.name: np.asarray(getattr(self, field.name)) for field in fields(self)}
        np.savez(path, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> OutlierDetector:
        with np.load(path, allow_pickle=False) as stored:
            values = {field.name: stored[field.name] for field in fields(cls)}
        return cls(
            method=str(values["method"]),
            class_means=values["class_means"],
            components=values["components"],
            component_weights=values["component_weights"],
            isotropic_variance=float(values["isotropic_variance"]),
            shrinkage=float(values["shrinkage"]),
            threshold=float(values["threshold"]),
        )


def fit_detector(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    target_pass_rate: float,
) -> OutlierDetector:
    """Class means from training photos, threshold from validation photos (``target_pass_rate``: see
    :class:`bird_model.settings.RunSettings`).

    ``train_labels`` are class indices ``0..K-1``, the classifier's output order.
    """
    return calibrated(centroid_detector(train_features, train_labels), validation_features, target_pass_rate)


def centroid_detector(train_features: np.ndarray, train_labels: np.ndarray) -> OutlierDetector:
    """The class means of the L2-normalised training features, not yet calibrated (threshold infinite)."""
    features = normalise(train_features)
    labels = np.asarray(train_labels)
    if np.any(np.bincount(labels) == 0):
        raise ValueError("every class 0..K-1 needs at least one training photo to have a mean")
    means = np.stack([features[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    no_directions = np.zeros((features.shape[1], 0))
    return OutlierDetector(METHOD, means, no_directions, np.zeros(0), 1.0, 1.0, threshold=math.inf)


def calibrated(detector: OutlierDetector, validation_features: np.ndarray, target_pass_rate: float) -> OutlierDetector:
    """``detector`` with the threshold that ``target_pass_rate`` of new in-distribution photos pass."""
    return replace(detector, threshold=calibrate_threshold(detector.score(validation_features), target_pass_rate))


def calibrate_threshold(scores: np.ndarray, target_pass_rate: float) -> float:
    """The smallest validation score such that a new in-distribution photo passes with ``target_pass_rate``.

    Uses the conformal rank ``ceil(target * (n + 1))`` rather than the plain percentile: with
    40 validation photos a plain 97th percentile lets only about 95% of new photos through.
    Below about ``1 / (1 - target)`` photos the rank runs past the largest score, which is
    then used, and the pass rate is only ``n / (n + 1)``.
    """
    if not 0.0 < target_pass_rate < 1.0:
        raise ValueError(f"target_pass_rate must be between 0 and 1, got {target_pass_rate}")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    if ordered.size == 0:
        raise ValueError("calibrating the threshold needs at least one validation photo")
    rank = min(ordered.size, math.ceil(target_pass_rate * (ordered.size + 1)))
    return float(ordered[rank - 1])


def normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)

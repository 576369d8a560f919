"""Saying "not one of my birds": how far a photo's features lie from the training classes.

A softmax always spreads its whole probability over the known classes, so a cat or a
landscape can still come out as "macaw, 90%". Distances in the pooled MobileNetV2 feature
space do not have that blind spot: a photo unlike every class is far from all of them.

Features are L2-normalised first (the direction of a feature vector carries the content,
its length mostly the contrast and size of what is in view), then scored by the squared
distance to the nearest class mean under a shared covariance. Two covariances are offered:

- ``centroid``: isotropic, i.e. plain distance to the nearest class mean;
- ``mahalanobis``: the pooled within-class covariance, shrunk towards isotropic with the
  Ledoit-Wolf formula, because 1280-d features from a few hundred photos give a singular
  sample covariance.

The within-class covariance has rank below the number of training photos, so the
Mahalanobis form is stored as a few hundred principal directions instead of a 1280x1280
precision matrix; ``centroid`` is the same formula with no directions.

The threshold comes from validation photos, which the class means never saw: training
photos sit closer to the means than any new photo will.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

METHODS = ("centroid", "mahalanobis")
DEFAULT_METHOD = "centroid"
"""Picked on the parrots benchmark (benchmarks/ood.py): both reach AUROC 1.000 against the
packaged out-of-distribution images; the centroid score flags more photos of a parrot
species left out of training and needs no covariance estimate from a few hundred photos."""


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
        """Squared distance to the nearest class; higher means more unlike the training photos."""
        differences = _normalise(np.atleast_2d(features))[:, np.newaxis, :] - self.class_means[np.newaxis]
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
    target_pass_rate: float = 0.97,
    method: str = DEFAULT_METHOD,
) -> OutlierDetector:
    """Class means (and covariance) from training photos, threshold from validation photos.

    ``train_labels`` are class indices ``0..K-1``, the classifier's output order.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    features = _normalise(train_features)
    labels = np.asarray(train_labels)
    if np.any(np.bincount(labels) == 0):
        raise ValueError("every class 0..K-1 needs at least one training photo to have a mean")
    means = np.stack([features[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    residuals = features - means[labels]
    if method == "mahalanobis":
        components, weights, variance, shrinkage = _shrunk_covariance(residuals)
    else:
        components, weights, variance, shrinkage = np.zeros((features.shape[1], 0)), np.zeros(0), 1.0, 1.0
    uncalibrated = OutlierDetector(method, means, components, weights, variance, shrinkage, threshold=math.inf)
    threshold = calibrate_threshold(uncalibrated.score(validation_features), target_pass_rate)
    return replace(uncalibrated, threshold=threshold)


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


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Chance that an outlier scores above an in-distribution photo (ties count half).

    The Mann-Whitney statistic from average ranks, so no scikit-learn in the product.
    """
    inside, outside = np.ravel(in_scores), np.ravel(out_scores)
    _, inverse, counts = np.unique(np.concatenate([inside, outside]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    wins = ranks[inside.size :].sum() - outside.size * (outside.size + 1) / 2
    return float(wins / (inside.size * outside.size))


def _normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


def _shrunk_covariance(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(1 - s) S + s mu I`` in low-rank form: directions, their weights, ``s mu`` and ``s``.

    With ``S = V diag(l) V^T`` the inverse is ``(I - V diag(c) V^T) / (s mu)`` where
    ``c = (1 - s) l / ((1 - s) l + s mu)``, so only V and c need storing.
    """
    samples, dimensions = residuals.shape
    shrinkage = _ledoit_wolf_shrinkage(residuals)
    mean_variance = float((residuals**2).sum() / samples / dimensions)
    _, singular_values, directions = np.linalg.svd(residuals, full_matrices=False)
    eigenvalues = singular_values**2 / samples
    keep = eigenvalues > eigenvalues.max(initial=0.0) * 1e-10
    isotropic = max(shrinkage * mean_variance, 1e-12)
    spread = (1 - shrinkage) * eigenvalues[keep]
    return directions[keep].T, spread / (spread + isotropic), isotropic, shrinkage


def _ledoit_wolf_shrinkage(residuals: np.ndarray) -> float:
    """Ledoit & Wolf (2004) optimal weight of ``mu I`` for centred samples (as in scikit-learn)."""
    samples, dimensions = residuals.shape
    squared = residuals**2
    variances = squared.sum(axis=0) / samples
    mu = variances.sum() / dimensions
    delta_sum = ((residuals.T @ residuals) ** 2).sum() / samples**2
    beta_sum = (squared.T @ squared).sum()
    beta = (beta_sum / samples - delta_sum) / (dimensions * samples)
    delta = (delta_sum - 2 * mu * variances.sum() + dimensions * mu**2) / dimensions
    return float(min(beta, delta) / delta) if delta > 0 else 1.0

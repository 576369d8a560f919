"""Outlier scores compared with the product's in ``benchmarks/ood.py``; only the product's ships.

- ``class-and-neighbour``: the product's (:mod:`bird_model.ood`);
- ``centroid``: the product's score before it, distance to the nearest class mean of the
  L2-normalised features;
- ``mahalanobis``: the same with the pooled within-class covariance, shrunk towards isotropic
  with scikit-learn's Ledoit-Wolf estimate, because 1280-d features from a few hundred photos
  give a singular sample covariance. It is kept as a few hundred principal directions
  instead of a 1280x1280 precision matrix;
- ``knn``: cosine distance to the nearest training photo;
- ``energy``: minus the log-sum-exp of the head's logits (needs the head's weights);
- ``centred class-and-neighbour``: the product's, on features centred on the training mean
  first (refitted per fit, so a held-out class never moves the centre).

Every score is calibrated the product's way (:func:`bird_model.ood.calibrate_threshold` on the
validation photos). :func:`auroc` is scikit-learn's ``roc_auc_score``: the chance that an
outlier scores above an in-distribution photo, ties counting half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.metrics import roc_auc_score

from bird_model.ood import METHOD, calibrate_threshold, fit_detector, normalise

CENTRED = f"centred {METHOD}"
METHODS = ("centroid", "mahalanobis", "knn", "energy", METHOD, CENTRED)
DEFAULT_METHOD = METHOD

Head = tuple[np.ndarray, np.ndarray]
"""The softmax head's kernel ``(features, classes)`` and bias ``(classes,)``."""


@dataclass(frozen=True)
class Scorer:
    """A fitted, calibrated score: higher is more unlike the training photos."""

    method: str
    score: Callable[[np.ndarray], np.ndarray]
    threshold: float

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold


@dataclass(frozen=True)
class Mahalanobis:
    """Squared Mahalanobis distance to the nearest class mean, shared shrunk covariance in low-rank form."""

    class_means: np.ndarray
    components: np.ndarray
    component_weights: np.ndarray
    isotropic_variance: float
    shrinkage: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        differences = normalise(np.atleast_2d(features))[:, np.newaxis, :] - self.class_means[np.newaxis]
        explained = ((differences @ self.components) ** 2 * self.component_weights).sum(axis=-1)
        return (((differences**2).sum(axis=-1) - explained) / self.isotropic_variance).min(axis=1)


def fit_scorer(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    target_pass_rate: float,
    method: str = DEFAULT_METHOD,
    head: Head | None = None,
) -> Scorer:
    """Fit ``method`` on the training photos and calibrate it on the validation photos."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == METHOD:
        detector = fit_detector(train_features, train_labels, validation_features, target_pass_rate)
        return Scorer(method, detector.score, detector.threshold)
    if method == CENTRED:
        centre = np.asarray(train_features, np.float64).mean(axis=0)
        detector = fit_detector(train_features - centre, train_labels, validation_features - centre, target_pass_rate)
        return Scorer(method, lambda x: detector.score(np.atleast_2d(x) - centre), detector.threshold)
    score = _fit_score(method, np.asarray(train_features, np.float64), np.asarray(train_labels), head)
    return Scorer(method, score, calibrate_threshold(score(validation_features), target_pass_rate))


def _fit_score(method: str, features: np.ndarray, labels: np.ndarray, head: Head | None) -> Callable[[np.ndarray], np.ndarray]:
    if method == "energy":
        if head is None:
            raise ValueError("the energy score needs the head's weights")
        kernel, bias = head
        return lambda x: -np.logaddexp.reduce(np.atleast_2d(x).astype(np.float64) @ kernel + bias, axis=1)
    normalised = normalise(features)
    if method == "knn":
        return lambda x: 1.0 - (normalise(np.atleast_2d(x)) @ normalised.T).max(axis=1)
    means = np.stack([normalised[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    if method == "centroid":
        return lambda x: ((normalise(np.atleast_2d(x))[:, np.newaxis] - means[np.newaxis]) ** 2).sum(axis=-1).min(axis=1)
    return mahalanobis(normalised - means[labels], means)


def mahalanobis(residuals: np.ndarray, means: np.ndarray) -> Mahalanobis:
    """``(1 - s) S + s mu I`` in low-rank form: directions, their weights, ``s mu`` and ``s``.

    With ``S = V diag(l) V^T`` the inverse is ``(I - V diag(c) V^T) / (s mu)`` where
    ``c = (1 - s) l / ((1 - s) l + s mu)``, so only V and c need storing.
    """
    samples, dimensions = residuals.shape
    shrinkage = float(ledoit_wolf_shrinkage(residuals, assume_centered=True))
    mean_variance = float((residuals**2).sum() / samples / dimensions)
    _, singular_values, directions = np.linalg.svd(residuals, full_matrices=False)
    eigenvalues = singular_values**2 / samples
    keep = eigenvalues > eigenvalues.max(initial=0.0) * 1e-10
    isotropic = max(shrinkage * mean_variance, 1e-12)
    spread = (1 - shrinkage) * eigenvalues[keep]
    return Mahalanobis(means, directions[keep].T, spread / (spread + isotropic), isotropic, shrinkage)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    inside, outside = np.ravel(in_scores), np.ravel(out_scores)
    truth = np.concatenate([np.zeros(inside.size), np.ones(outside.size)])
    return float(roc_auc_score(truth, np.concatenate([inside, outside])))

"""Outlier scores compared with the product's in ``benchmarks/ood.py``; only the product's ships.

- ``relative-mahalanobis``: the product's (:mod:`bird_model.ood`);
- ``class-and-neighbour``: the product's score before it (distance to the nearest class mean in
  units of that class's spread plus 1-NN cosine distance, each standardised on the validation
  photos), fitted here since the product only reads it;
- ``centroid``: the product's score before that, distance to the nearest class mean of the
  L2-normalised features;
- ``mahalanobis``: the same with the pooled within-class covariance, shrunk towards isotropic
  with scikit-learn's Ledoit-Wolf estimate, because 1280-d features from a few hundred photos
  give a singular sample covariance. It is kept as a few hundred principal directions
  instead of a 1280x1280 precision matrix;
- ``knn``: cosine distance to the nearest training photo;
- ``energy``: minus the log-sum-exp of the head's logits (needs the head's weights);
- ``centred class-and-neighbour``: ``class-and-neighbour`` on features centred on the training
  mean first (refitted per fit, so a held-out class never moves the centre).

Every score is calibrated the product's way (:func:`bird_model.ood.calibrate_threshold` on the
validation photos). :func:`auroc` is scikit-learn's ``roc_auc_score``: the chance that an
outlier scores above an in-distribution photo, ties counting half.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.metrics import roc_auc_score

from bird_model.ood import (
    CLASS_AND_NEIGHBOUR,
    METHOD,
    OutlierDetector,
    calibrate_threshold,
    calibrated,
    fit_detector,
    identity,
    normalise,
)

CENTRED = f"centred {CLASS_AND_NEIGHBOUR}"
METHODS = ("centroid", "mahalanobis", "knn", "energy", CLASS_AND_NEIGHBOUR, CENTRED, METHOD)
DEFAULT_METHOD = METHOD
MAX_NEIGHBOURS = 2048
"""Training photos :data:`CLASS_AND_NEIGHBOUR` kept for its nearest-neighbour distance (a seeded sample beyond it)."""
MIN_PHOTOS_FOR_SPREAD = 3
"""A class with fewer training photos was scaled by the spread of all classes together."""

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
    if method == CLASS_AND_NEIGHBOUR:
        detector = class_and_neighbour(train_features, train_labels, validation_features, target_pass_rate)
        return Scorer(method, detector.score, detector.threshold)
    if method == CENTRED:
        centre = np.asarray(train_features, np.float64).mean(axis=0)
        detector = class_and_neighbour(train_features - centre, train_labels, validation_features - centre, target_pass_rate)
        return Scorer(method, lambda x: detector.score(np.atleast_2d(x) - centre), detector.threshold)
    score = _fit_score(method, np.asarray(train_features, np.float64), np.asarray(train_labels), head)
    return Scorer(method, score, calibrate_threshold(score(validation_features), target_pass_rate))


def class_and_neighbour(
    train_features: np.ndarray, train_labels: np.ndarray, validation_features: np.ndarray, target_pass_rate: float
) -> OutlierDetector:
    """The product's detector as :data:`CLASS_AND_NEIGHBOUR` folders were fitted: class means and
    spreads, a sample of training photos as neighbours, both distances standardised on validation photos."""
    labels = np.asarray(train_labels)
    counts = np.bincount(labels)
    embedded = normalise(train_features)
    means = np.stack([embedded[labels == k].mean(axis=0) for k in range(len(counts))])
    own = ((embedded - means[labels]) ** 2).sum(axis=1)
    pooled = max(float(np.median(own)), 1e-12)
    spreads = np.array([max(float(np.median(own[labels == k])), 1e-12) if counts[k] >= MIN_PHOTOS_FOR_SPREAD else pooled
                        for k in range(len(counts))])
    kept = np.sort(np.random.default_rng(0).permutation(len(embedded))[:MAX_NEIGHBOURS])
    plain = identity(embedded.shape[1])
    detector = OutlierDetector(CLASS_AND_NEIGHBOUR, means, spreads, plain, np.zeros(0), plain,
                               embedded[kept].astype(np.float16), np.zeros(2), np.ones(2), math.inf)
    class_term, neighbour_term, _ = detector.distances(normalise(validation_features))
    offsets = np.array([float(np.median(class_term)), float(np.median(neighbour_term))])
    scales = np.array([_positive(float(np.std(term))) for term in (class_term, neighbour_term)])
    return calibrated(replace(detector, offsets=offsets, scales=scales), validation_features, target_pass_rate)


def _positive(spread: float) -> float:
    """A validation spread to divide by: one validation photo, or identical ones, have none (then 1)."""
    return spread if spread > 1e-12 else 1.0


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

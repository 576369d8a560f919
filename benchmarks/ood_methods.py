"""Benchmark-only outlier scores, compared with the product's in ``benchmarks/ood.py``.

- ``centroid``: the product's (:mod:`bird_model.ood`), distance to the nearest class mean;
- ``mahalanobis``: the pooled within-class covariance, shrunk towards isotropic with
  scikit-learn's Ledoit-Wolf estimate, because 1280-d features from a few hundred photos give
  a singular sample covariance. The covariance has rank below the number of training photos,
  so it is stored as a few hundred principal directions (the detector's ``components``)
  instead of a 1280x1280 precision matrix, and it scores with the product's own formula.

:func:`auroc` is scikit-learn's ``roc_auc_score``: the chance that an outlier scores above an
in-distribution photo, ties counting half.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.metrics import roc_auc_score

from bird_model.ood import METHOD, OutlierDetector, calibrated, centroid_detector, normalise

METHODS = (METHOD, "mahalanobis")
DEFAULT_METHOD = METHOD


def fit_detector(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    target_pass_rate: float,
    method: str = DEFAULT_METHOD,
) -> OutlierDetector:
    """The product's detector, or with ``method="mahalanobis"`` the same with a shrunk covariance."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    detector = centroid_detector(train_features, train_labels)
    if method == "mahalanobis":
        residuals = normalise(train_features) - detector.class_means[np.asarray(train_labels)]
        components, weights, variance, shrinkage = shrunk_covariance(residuals)
        detector = replace(
            detector, method=method, components=components, component_weights=weights,
            isotropic_variance=variance, shrinkage=shrinkage,
        )
    return calibrated(detector, validation_features, target_pass_rate)


def shrunk_covariance(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
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
    return directions[keep].T, spread / (spread + isotropic), isotropic, shrinkage


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    inside, outside = np.ravel(in_scores), np.ravel(out_scores)
    truth = np.concatenate([np.zeros(inside.size), np.ones(outside.size)])
    return float(roc_auc_score(truth, np.concatenate([inside, outside])))

"""Saying "not one of my birds": how far a photo's features lie from the training photos.

A softmax always spreads its whole probability over the known classes, so a cat or a
landscape can still come out as "macaw, 90%". Distances in the pooled MobileNetV2 feature
space do not have that blind spot: a photo unlike every class is far from all of them.

The score (``METHOD``), picked on evidence in ``benchmarks/ood.py`` (benchmarks/README.md,
"Out of distribution"), is the relative Mahalanobis distance (Ren et al. 2021, "A Simple Fix to
Mahalanobis Distance for Improving Near-OOD Detection") between L2-normalised features (their
direction carries the content, their length mostly the contrast and size of what is in view):
the Mahalanobis distance to the nearest class mean, under the classes' shared covariance, minus
the distance to the mean of all training photos under their overall covariance. The second term
takes away what makes a photo unusual for any photo (a blurred shot, a bird small in the frame)
and leaves what makes it unlike every class: another bird species, the nearest outlier there is,
is caught more often (a species left out of training: 86% against 70% for the score before).

Both covariances come from a few hundred photos in 1280 dimensions, so they are shrunk halfway
towards their mean variance (:data:`SHRINKAGE`) and kept as their leading directions
(:class:`Precision`), which bounds ``ood.npz`` however many photos trained the model.

The threshold comes from validation photos, which the means and covariances never saw:
training photos sit closer to them than any new photo will.

Folders written before it are still read and scored as they were: ``CLASS_AND_NEIGHBOUR`` (the
distance to the nearest class mean in units of that class's spread plus the distance to the
nearest training photo, each standardised on validation photos) and ``LEGACY_METHOD`` (the plain
distance to the nearest class mean).

``ood.npz`` comes with a downloaded model folder, so :meth:`OutlierDetector.load` treats it as
hostile: no pickles, every array's size read from its header and bounded before it is loaded.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

METHOD = "relative-mahalanobis"
CLASS_AND_NEIGHBOUR = "class-and-neighbour"
"""The score of folders written from 2026-12-03 until :data:`METHOD`."""
LEGACY_METHOD = "centroid"
"""The score of folders written before :data:`CLASS_AND_NEIGHBOUR`: the plain distance to the nearest class mean."""

SHRINKAGE = 0.5
"""Weight of the mean variance in a shrunk covariance, ``(1 - s) S + s m I``. Halfway, not tuned:
0.2 and 0.8 do about as well (``benchmarks/ood_species.py --shrinkage``, benchmarks/README.md)."""
MAX_DIRECTIONS = 256
"""Leading directions kept of each covariance (the rest count as the mean variance): 640 KB of
float16 at 1280 features, so a Space's download and a request's work stay bounded."""
MAX_FILE_BYTES = 256 * 2**20
"""Largest ``ood.npz`` (its arrays' total size, as stored) that :meth:`OutlierDetector.load` reads."""
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
"""The ``.npy`` header versions ``np.savez`` writes."""
SCORE_BLOCK_BYTES = 32 * 2**20
"""Size of one block of photo-to-class (or photo-to-neighbour) work in :meth:`OutlierDetector.score`."""


@dataclass(frozen=True)
class Precision:
    """The inverse of a shrunk covariance ``(1 - s) V diag(l) V^T + s m I`` without its ``d x d`` matrix:
    ``(I - V diag(w) V^T) / (s m)`` with ``w = (1 - s) l / ((1 - s) l + s m)``."""

    directions: np.ndarray
    """``(features, rank)`` orthonormal leading directions ``V`` (float16)."""
    weights: np.ndarray
    """``(rank,)`` the share ``w`` of each direction taken away."""
    isotropic: float
    """``s m``: the variance of every other direction."""

    def squared_norms(self, vectors: np.ndarray) -> np.ndarray:
        """``x^T P x`` over the last axis of ``vectors``."""
        projected = vectors @ self.directions.astype(np.float64)
        return ((vectors**2).sum(axis=-1) - (projected**2 * self.weights).sum(axis=-1)) / self.isotropic


def identity(dimensions: int) -> Precision:
    """The plain squared Euclidean distance, as the scores before :data:`METHOD` use."""
    return Precision(np.zeros((dimensions, 0), np.float16), np.zeros(0), 1.0)


def shrunk_precision(residuals: np.ndarray) -> Precision:
    """The precision of ``residuals`` (rows already centred), shrunk by :data:`SHRINKAGE`."""
    samples, dimensions = residuals.shape
    eigenvalues, vectors = np.linalg.eigh(residuals.T @ residuals / max(samples, 1))
    isotropic = max(SHRINKAGE * float(eigenvalues.sum()) / dimensions, 1e-12)
    leading = np.argsort(eigenvalues)[::-1][:MAX_DIRECTIONS]
    leading = leading[eigenvalues[leading] > 1e-10 * max(float(eigenvalues.max(initial=0.0)), 1e-12)]
    spread = (1 - SHRINKAGE) * eigenvalues[leading]
    return Precision(vectors[:, leading].astype(np.float16), spread / (spread + isotropic), isotropic)


@dataclass(frozen=True)
class OutlierDetector:
    """Everything needed to score features at serving time, with no training data at hand.

    One form for the three scores: the class distance under ``class_precision`` (identity before
    :data:`METHOD`) in units of ``class_spreads``, standardised; minus the distance to
    ``background_mean`` (none before :data:`METHOD`); plus the standardised distance to the nearest
    of ``neighbours`` (only :data:`CLASS_AND_NEIGHBOUR` keeps any).
    """

    method: str
    class_means: np.ndarray
    """``(classes, features)`` means of the normalised training features."""
    class_spreads: np.ndarray
    """``(classes,)`` each class's scale (ones for :data:`METHOD`, whose precision already scales)."""
    class_precision: Precision
    background_mean: np.ndarray
    """``(features,)`` mean of all normalised training features; ``(0,)`` for no background term."""
    background_precision: Precision
    neighbours: np.ndarray
    """``(photos, features)`` normalised training features (float16), for :data:`CLASS_AND_NEIGHBOUR`."""
    offsets: np.ndarray
    """``(2,)`` subtracted from the class and neighbour distances before scaling."""
    scales: np.ndarray
    """``(2,)`` the class and neighbour distances are divided by."""
    threshold: float
    """Scores above this are unknown."""

    def score(self, features: np.ndarray) -> np.ndarray:
        """Higher means more unlike the training photos; one score per row of ``features``.

        Scored a block of photos at a time: every photo's difference from every class mean is
        ``photos × classes × features`` float64s, 1.2 GB for 600 validation photos of 100 classes
        at once, and training scores its whole validation split.
        """
        class_term, neighbour_term, background_term = self.distances(normalise(np.atleast_2d(features)))
        score = (class_term - self.offsets[0]) / self.scales[0] - background_term
        if len(self.neighbours):
            score = score + (neighbour_term - self.offsets[1]) / self.scales[1]
        return score

    def distances(self, embedded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The raw class, neighbour and background distances of normalised features."""
        classes, dimensions = self.class_means.shape
        width = max(classes * (dimensions + self.class_precision.weights.size), self.neighbours.size, 1)
        rows = max(1, SCORE_BLOCK_BYTES // (width * 8))
        terms: list[list[np.ndarray]] = [[np.empty(0)], [np.empty(0)], [np.zeros(len(embedded))]]
        neighbours = self.neighbours.astype(np.float64)
        for start in range(0, len(embedded), rows):
            block = embedded[start : start + rows]
            differences = block[:, np.newaxis, :] - self.class_means[np.newaxis]
            terms[0].append((self.class_precision.squared_norms(differences) / self.class_spreads).min(axis=1))
            if len(neighbours):
                terms[1].append(1.0 - (block @ neighbours.T).max(axis=1))
        if self.background_mean.size:
            terms[2] = [self.background_precision.squared_norms(embedded - self.background_mean)]
        class_term, neighbour_term, background_term = (np.concatenate(term) for term in terms)
        return class_term, neighbour_term, background_term

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: Path) -> None:
        arrays = {field.name: np.asarray(getattr(self, field.name)) for field in fields(self)
                  if not field.name.endswith("_precision")}
        for name in ("class_precision", "background_precision"):
            precision: Precision = getattr(self, name)
            arrays |= {f"{name}_{part.name}": np.asarray(getattr(precision, part.name)) for part in fields(Precision)}
        np.savez(path, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> OutlierDetector:
        """Raises ``ValueError`` with the reason for a file that is not a detector this version reads."""
        try:
            path = Path(path)
            _check_sizes(path)
            with np.load(path, allow_pickle=False) as stored:
                values = {name: stored[name] for name in stored.files}
        except (OSError, zipfile.BadZipFile, EOFError, KeyError) as error:
            raise ValueError(f"{path} is not a readable outlier detector ({error}).") from error
        method = str(values.get("method", ""))
        try:
            if method not in (METHOD, CLASS_AND_NEIGHBOUR, LEGACY_METHOD):
                raise ValueError(f"the method {method!r} is not one this version reads")
            detector = _legacy(values) if method == LEGACY_METHOD else _stored(values, method)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not an outlier detector this version reads ({error}).") from error
        _check_shapes(detector)
        return detector


def _precision(values: dict[str, np.ndarray], name: str) -> Precision:
    return Precision(
        directions=values[f"{name}_directions"].astype(np.float16),
        weights=values[f"{name}_weights"].astype(np.float64),
        isotropic=float(values[f"{name}_isotropic"]),
    )


def _stored(values: dict[str, np.ndarray], method: str) -> OutlierDetector:
    """A folder of :data:`METHOD`, or of :data:`CLASS_AND_NEIGHBOUR`, which stored no covariances
    or background mean (its distances are plain) but neighbours, offsets and scales."""
    means = values["class_means"].astype(np.float64)
    relative = method == METHOD
    plain = identity(means.shape[-1])
    return OutlierDetector(
        method=method,
        class_means=means,
        class_spreads=values["class_spreads"].astype(np.float64),
        class_precision=_precision(values, "class_precision") if relative else plain,
        background_mean=values["background_mean"].astype(np.float64) if relative else np.zeros(0),
        background_precision=_precision(values, "background_precision") if relative else plain,
        neighbours=values["neighbours"].astype(np.float16),
        offsets=values["offsets"].astype(np.float64),
        scales=values["scales"].astype(np.float64),
        threshold=float(values["threshold"]),
    )


def _legacy(values: dict[str, np.ndarray]) -> OutlierDetector:
    """A folder from before :data:`CLASS_AND_NEIGHBOUR`: the class means, with no spreads or neighbours."""
    means = values["class_means"].astype(np.float64)
    if means.ndim != 2 or values["components"].size:
        raise ValueError("the outlier detector (centroid) has arrays of an unexpected shape.")
    return OutlierDetector(
        method=LEGACY_METHOD,
        class_means=means,
        class_spreads=np.ones(len(means)),
        class_precision=identity(means.shape[1]),
        background_mean=np.zeros(0),
        background_precision=identity(means.shape[1]),
        neighbours=np.zeros((0, means.shape[1]), np.float16),
        offsets=np.zeros(2),
        scales=np.array([float(values["isotropic_variance"]), 1.0]),
        threshold=float(values["threshold"]),
    )


def _check_sizes(path: Path) -> None:
    """Refuse before loading anything large: each array's header states its shape, which is checked
    against the file's bound and the member's stored size (a header claiming more than it holds)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than an outlier detector can be ({MAX_FILE_BYTES // 2**20} MB).")
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as stream:
                reader = HEADER_READERS.get(np.lib.format.read_magic(stream))
                if reader is None:
                    raise ValueError(f"{path}: {member.filename} is not an array of a format this version reads.")
                shape, _, dtype = reader(stream, max_header_size=10_000)
            if dtype.hasobject:
                raise ValueError(f"{path}: {member.filename} holds Python objects, not numbers.")
            size = math.prod(shape) * dtype.itemsize
            total += size
            if size > member.file_size or total > MAX_FILE_BYTES:
                raise ValueError(f"{path}: {member.filename} declares more data than an outlier detector holds.")


def _check_shapes(detector: OutlierDetector) -> None:
    classes, dimensions = detector.class_means.shape if detector.class_means.ndim == 2 else (0, 0)
    precisions = (detector.class_precision, detector.background_precision)
    consistent = (
        classes > 0
        and detector.class_spreads.shape == (classes,)
        and detector.neighbours.ndim == 2
        and detector.neighbours.shape[1] == dimensions
        and detector.background_mean.shape in ((0,), (dimensions,))
        and all(p.directions.ndim == 2 and p.directions.shape == (dimensions, p.weights.size)
                and p.weights.ndim == 1 and p.weights.size <= MAX_DIRECTIONS for p in precisions)
        and detector.offsets.shape == detector.scales.shape == (2,)
        and np.all(detector.class_spreads > 0)
        and np.all(detector.scales > 0)
        and all(p.isotropic > 0 and np.all((p.weights >= 0) & (p.weights < 1)) for p in precisions)
        and all(np.all(np.isfinite(array)) for array in (
            detector.class_means, detector.class_spreads, detector.neighbours, detector.background_mean,
            detector.offsets, detector.scales, *(p.directions for p in precisions)))
        and not math.isnan(detector.threshold)
    )
    if not consistent:
        raise ValueError("the outlier detector's arrays do not fit together (shapes, or values that are not finite).")


def fit_detector(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    target_pass_rate: float,
) -> OutlierDetector:
    """Class means and both covariances from training photos; the threshold from validation
    photos (``target_pass_rate``: see :class:`bird_model.settings.RunSettings`).

    ``train_labels`` are class indices ``0..K-1``, the classifier's output order.
    """
    labels = np.asarray(train_labels)
    counts = np.bincount(labels)
    if np.any(counts == 0):
        raise ValueError("every class 0..K-1 needs at least one training photo to have a mean")
    embedded = normalise(train_features)
    means = np.stack([embedded[labels == k].mean(axis=0) for k in range(len(counts))])
    background = embedded.mean(axis=0)
    detector = OutlierDetector(
        method=METHOD,
        class_means=means,
        class_spreads=np.ones(len(means)),
        class_precision=shrunk_precision(embedded - means[labels]),
        background_mean=background,
        background_precision=shrunk_precision(embedded - background),
        neighbours=np.zeros((0, embedded.shape[1]), np.float16),
        offsets=np.zeros(2),
        scales=np.ones(2),
        threshold=math.inf,
    )
    return calibrated(detector, validation_features, target_pass_rate)


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

"""Saying "not one of my birds": how far a photo's features lie from the training photos.

A softmax always spreads its whole probability over the known classes, so a cat or a
landscape can still come out as "macaw, 90%". Distances in the pooled MobileNetV2 feature
space do not have that blind spot: a photo unlike every class is far from all of them.

The score (``METHOD``), picked on evidence in ``benchmarks/ood.py`` (benchmarks/README.md,
"Out of distribution"), adds two distances between L2-normalised features (the direction of a
feature vector carries the content, its length mostly the contrast and size of what is in view):

- the distance to the nearest class mean, in units of that class's own spread (a tight class
  is not judged with a loose class's tolerance);
- the distance to the nearest training photo (1-nearest-neighbour cosine distance), which
  follows a class's actual shape where a mean cannot.

Each is standardised on the validation photos (median and standard deviation), so they add
on one scale. Folders written before this score (``LEGACY_METHOD``: the plain distance to the
nearest class mean) are still read and scored as they were.

The threshold comes from validation photos, which the means and neighbours never saw:
training photos sit closer to them than any new photo will.

``ood.npz`` comes with a downloaded model folder, so :meth:`OutlierDetector.load` treats it as
hostile: no pickles, every array's size read from its header and bounded before it is loaded.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

METHOD = "class-and-neighbour"
LEGACY_METHOD = "centroid"
"""The score of folders written before :data:`METHOD`: the plain distance to the nearest class mean."""

MAX_NEIGHBOURS = 2048
"""Training photos kept for the nearest-neighbour distance (a seeded sample beyond it): 5 MB of
float16 at 1280 features, so a Space's download and a request's work stay bounded however many
photos trained the model."""
MIN_PHOTOS_FOR_SPREAD = 3
"""A class with fewer training photos is scaled by the spread of all classes together: one or two
photos give no spread of their own."""
MAX_FILE_BYTES = 256 * 2**20
"""Largest ``ood.npz`` (its arrays' total size, as stored) that :meth:`OutlierDetector.load` reads."""
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
"""The ``.npy`` header versions ``np.savez`` writes."""
SCORE_BLOCK_BYTES = 32 * 2**20
"""Size of one block of photo-to-class (or photo-to-neighbour) work in :meth:`OutlierDetector.score`."""


@dataclass(frozen=True)
class OutlierDetector:
    """Everything needed to score features at serving time, with no training data at hand."""

    method: str
    class_means: np.ndarray
    """``(classes, features)`` means of the normalised training features."""
    class_spreads: np.ndarray
    """``(classes,)`` each class's median squared distance of its training photos to its mean."""
    neighbours: np.ndarray
    """``(photos, features)`` normalised training features (float16); none for :data:`LEGACY_METHOD`."""
    offsets: np.ndarray
    """``(2,)`` validation medians of the class and neighbour distances."""
    scales: np.ndarray
    """``(2,)`` validation standard deviations of the class and neighbour distances."""
    threshold: float
    """Scores above this are unknown."""

    def score(self, features: np.ndarray) -> np.ndarray:
        """Higher means more unlike the training photos; one score per row of ``features``.

        Scored a block of photos at a time: every photo's difference from every class mean is
        ``photos × classes × features`` float64s, 1.2 GB for 600 validation photos of 100 classes
        at once, and training scores its whole validation split.
        """
        embedded = self.embed(features)
        class_term, neighbour_term = self.distances(embedded)
        score = (class_term - self.offsets[0]) / self.scales[0]
        if len(self.neighbours):
            score = score + (neighbour_term - self.offsets[1]) / self.scales[1]
        return score

    def embed(self, features: np.ndarray) -> np.ndarray:
        return normalise(np.atleast_2d(features))

    def distances(self, embedded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two raw distances (class, neighbour) of embedded features, before standardising."""
        width = max(self.class_means.size, self.neighbours.size, 1)
        rows = max(1, SCORE_BLOCK_BYTES // (width * 8))
        class_blocks, neighbour_blocks = [np.empty(0)], [np.empty(0)]
        neighbours = self.neighbours.astype(np.float64)
        for start in range(0, len(embedded), rows):
            block = embedded[start : start + rows]
            differences = block[:, np.newaxis, :] - self.class_means[np.newaxis]
            class_blocks.append(((differences**2).sum(axis=-1) / self.class_spreads).min(axis=1))
            if len(neighbours):
                neighbour_blocks.append(1.0 - (block @ neighbours.T).max(axis=1))
        return np.concatenate(class_blocks), np.concatenate(neighbour_blocks)

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: Path) -> None:
        arrays = {field.name: np.asarray(getattr(self, field.name)) for field in fields(self)}
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
            detector = _legacy(values) if method == LEGACY_METHOD else _current(values, method)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not an outlier detector this version reads ({error}).") from error
        _check_shapes(detector)
        return detector


def _current(values: dict[str, np.ndarray], method: str) -> OutlierDetector:
    if method != METHOD or {field.name for field in fields(OutlierDetector)} - set(values):
        raise ValueError(f"the outlier detector's method {method!r} or its arrays are not what this version reads.")
    return OutlierDetector(
        method=method,
        class_means=values["class_means"].astype(np.float64),
        class_spreads=values["class_spreads"].astype(np.float64),
        neighbours=values["neighbours"].astype(np.float16),
        offsets=values["offsets"].astype(np.float64),
        scales=values["scales"].astype(np.float64),
        threshold=float(values["threshold"]),
    )


def _legacy(values: dict[str, np.ndarray]) -> OutlierDetector:
    """A folder from before :data:`METHOD`: the class means, with no spreads or neighbours."""
    means = values["class_means"].astype(np.float64)
    if means.ndim != 2 or values["components"].size:
        raise ValueError("the outlier detector (centroid) has arrays of an unexpected shape.")
    return OutlierDetector(
        method=LEGACY_METHOD,
        class_means=means,
        class_spreads=np.ones(len(means)),
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
    consistent = (
        classes > 0
        and detector.class_spreads.shape == (classes,)
        and detector.neighbours.ndim == 2
        and detector.neighbours.shape[1] == dimensions
        and detector.offsets.shape == detector.scales.shape == (2,)
        and np.all(detector.class_spreads > 0)
        and np.all(detector.scales > 0)
        and all(np.all(np.isfinite(getattr(detector, name)))
                for name in ("class_means", "class_spreads", "neighbours", "offsets", "scales"))
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
    """Means, spreads and neighbours from training photos; standardisation and threshold from
    validation photos (``target_pass_rate``: see :class:`bird_model.settings.RunSettings`).

    ``train_labels`` are class indices ``0..K-1``, the classifier's output order.
    """
    features = np.asarray(train_features, dtype=np.float64)
    labels = np.asarray(train_labels)
    counts = np.bincount(labels)
    if np.any(counts == 0):
        raise ValueError("every class 0..K-1 needs at least one training photo to have a mean")
    embedded = normalise(features)
    means = np.stack([embedded[labels == k].mean(axis=0) for k in range(len(counts))])
    own = ((embedded - means[labels]) ** 2).sum(axis=1)
    pooled = max(float(np.median(own)), 1e-12)
    spreads = np.array([
        max(float(np.median(own[labels == k])), 1e-12) if counts[k] >= MIN_PHOTOS_FOR_SPREAD else pooled
        for k in range(len(counts))
    ])
    kept = np.sort(np.random.default_rng(0).permutation(len(embedded))[:MAX_NEIGHBOURS])
    detector = OutlierDetector(
        METHOD, means, spreads, embedded[kept].astype(np.float16), np.zeros(2), np.ones(2), math.inf
    )
    terms = detector.distances(detector.embed(validation_features))
    offsets = np.array([float(np.median(term)) for term in terms])
    scales = np.array([_positive(float(np.std(term))) for term in terms])
    return calibrated(replace(detector, offsets=offsets, scales=scales), validation_features, target_pass_rate)


def _positive(spread: float) -> float:
    """A validation spread to divide by: one validation photo, or identical ones, have none (then 1)."""
    return spread if spread > 1e-12 else 1.0


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

"""The outlier detector on synthetic features: far points are unknown, near ones pass, files round-trip.

The product's detector and the benchmark's Mahalanobis variant (``benchmarks/ood_methods.py``,
needs scikit-learn from requirements-bench.txt) alike. ``ood.npz`` arrives with a downloaded
model folder, so the loader is also fed hostile files.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bird_model import ood
from bird_model.ood import (
    CLASS_AND_NEIGHBOUR,
    LEGACY_METHOD,
    METHOD,
    OutlierDetector,
    calibrate_threshold,
    fit_detector,
    normalise,
)

DIMENSIONS = 64
CLASSES = 3


class Clusters:
    """Non-negative clustered features, like pooled ReLU6 activations, one cluster per class."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.uniform(0.0, 3.0, size=(CLASSES, DIMENSIONS))
        self.spread = self.rng.uniform(0.1, 0.6, size=DIMENSIONS)
        """Unequal variances per dimension, so a shared covariance has something to learn."""

    def sample(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % CLASSES
        noise = self.rng.normal(size=(count, DIMENSIONS)) * self.spread
        return np.abs(self.centres[labels] + noise), labels

    def foreign(self, count: int) -> np.ndarray:
        """Points around a centre that belongs to no class."""
        centre = self.rng.uniform(0.0, 3.0, size=DIMENSIONS)
        return np.abs(centre + self.rng.normal(size=(count, DIMENSIONS)) * self.spread)


@pytest.fixture(params=[METHOD, "mahalanobis"])
def method(request: pytest.FixtureRequest) -> str:
    return request.param


def fit(train: np.ndarray, labels: np.ndarray, validation: np.ndarray, target: float, method: str) -> OutlierDetector:
    """The product's ``fit_detector``, or the benchmark's scorer for the Mahalanobis variant."""
    if method == METHOD:
        return fit_detector(train, labels, validation, target)
    ood_methods = pytest.importorskip("benchmarks.ood_methods", reason="scikit-learn (requirements-bench.txt)")
    return ood_methods.fit_scorer(train, labels, validation, target, method)


def fitted(method: str, clusters: Clusters, validation_count: int = 40) -> OutlierDetector:
    train, labels = clusters.sample(150)
    validation, _ = clusters.sample(validation_count)
    return fit(train, labels, validation, 0.97, method)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Share of (inside, outside) pairs where the outside point scores higher, ties half."""
    inside, outside = np.ravel(in_scores), np.ravel(out_scores)
    return float(np.mean((outside[:, None] > inside[None]) + 0.5 * (outside[:, None] == inside[None])))


def test_points_further_from_every_class_score_higher_and_are_unknown(method: str) -> None:
    clusters = Clusters()
    detector = fitted(method, clusters)
    inside, _ = clusters.sample(200)
    outside = clusters.foreign(200)
    assert auroc(detector.score(inside), detector.score(outside)) > 0.99
    assert detector.is_unknown(outside).mean() > 0.95
    path = np.linspace(0.0, 1.0, 6)[:, np.newaxis]
    walk = (1 - path) * clusters.centres[0] + path * clusters.foreign(1)
    assert np.all(np.diff(detector.score(walk)) > 0)


def test_new_in_distribution_points_pass_at_the_target_rate_on_average(method: str) -> None:
    """The conformal guarantee: averaged over validation sets of 40, at least the target passes.

    Only the threshold depends on the validation set, so the detector is fitted once and
    recalibrated per draw, as ``fit_detector`` does.
    """
    clusters = Clusters(seed=1)
    train, labels = clusters.sample(150)
    validation, _ = clusters.sample(40)
    detector = fit(train, labels, validation, 0.97, method)
    assert detector.threshold == calibrate_threshold(detector.score(validation), 0.97)
    unseen = detector.score(clusters.sample(1000)[0])
    thresholds = [calibrate_threshold(detector.score(clusters.sample(40)[0]), 0.97) for _ in range(200)]
    assert np.mean([np.mean(unseen <= threshold) for threshold in thresholds]) >= 0.97


def test_threshold_uses_the_conformal_rank() -> None:
    scores = np.arange(1.0, 101.0)
    assert calibrate_threshold(scores, 0.97) == 98.0
    assert calibrate_threshold(scores[:40], 0.97) == 40.0
    assert calibrate_threshold(scores[:5], 0.97) == 5.0
    with pytest.raises(ValueError):
        calibrate_threshold(scores, 1.0)


def test_save_and_load_give_identical_scores(tmp_path: Path) -> None:
    clusters = Clusters()
    detector = fitted(METHOD, clusters)
    detector.save(tmp_path / "ood.npz")
    loaded = OutlierDetector.load(tmp_path / "ood.npz")
    points = np.vstack([clusters.sample(20)[0], clusters.foreign(20)])
    assert loaded.method == METHOD
    assert loaded.threshold == detector.threshold
    np.testing.assert_array_equal(loaded.score(points), detector.score(points))


def legacy_file(path: Path, means: np.ndarray, threshold: float) -> None:
    """``ood.npz`` as folders published before the current score hold it."""
    np.savez(path, method=np.asarray(LEGACY_METHOD), class_means=means, components=np.zeros((means.shape[1], 0)),
             component_weights=np.zeros(0), isotropic_variance=np.asarray(1.0), shrinkage=np.asarray(1.0),
             threshold=np.asarray(threshold))


def test_a_folder_from_before_the_current_score_is_scored_as_it_was(tmp_path: Path) -> None:
    clusters = Clusters()
    train, labels = clusters.sample(150)
    normalised = normalise(train)
    means = np.stack([normalised[labels == k].mean(axis=0) for k in range(CLASSES)])
    legacy_file(tmp_path / "ood.npz", means, threshold=0.05)
    loaded = OutlierDetector.load(tmp_path / "ood.npz")
    points = np.vstack([clusters.sample(20)[0], clusters.foreign(20)])
    distances = ((normalise(points)[:, np.newaxis] - means[np.newaxis]) ** 2).sum(axis=-1).min(axis=1)
    assert loaded.method == LEGACY_METHOD
    np.testing.assert_allclose(loaded.score(points), distances, rtol=1e-12)
    np.testing.assert_array_equal(loaded.is_unknown(points), distances > 0.05)


def test_a_folder_of_the_class_and_neighbour_score_is_scored_as_it_was(tmp_path: Path) -> None:
    """``ood.npz`` as folders of the score before the current one hold it: spreads, neighbours, offsets."""
    clusters = Clusters()
    train, labels = clusters.sample(60)
    normalised = normalise(train)
    means = np.stack([normalised[labels == k].mean(axis=0) for k in range(CLASSES)])
    spreads, offsets, scales = np.array([0.5, 1.0, 2.0]), np.array([0.1, 0.2]), np.array([0.3, 0.4])
    np.savez(tmp_path / "ood.npz", method=np.asarray(CLASS_AND_NEIGHBOUR), class_means=means, class_spreads=spreads,
             neighbours=normalised.astype(np.float16), offsets=offsets, scales=scales, threshold=np.asarray(1.5))
    loaded = OutlierDetector.load(tmp_path / "ood.npz")
    points = normalise(np.vstack([clusters.sample(20)[0], clusters.foreign(20)]))
    class_term = (((points[:, np.newaxis] - means[np.newaxis]) ** 2).sum(axis=-1) / spreads).min(axis=1)
    neighbour_term = 1.0 - (points @ normalised.astype(np.float16).astype(np.float64).T).max(axis=1)
    expected = (class_term - 0.1) / 0.3 + (neighbour_term - 0.2) / 0.4
    assert loaded.method == CLASS_AND_NEIGHBOUR
    np.testing.assert_allclose(loaded.score(points), expected, rtol=1e-9)
    np.testing.assert_array_equal(loaded.is_unknown(points), expected > 1.5)


def test_the_score_is_the_relative_mahalanobis_distance_of_the_full_shrunk_covariances() -> None:
    """The low-rank precisions give what inverting the two shrunk covariances gives (Ren et al. 2021)."""
    clusters = Clusters()
    train, labels = clusters.sample(150)
    detector = fit_detector(train, labels, clusters.sample(40)[0], 0.97)
    normalised = normalise(train)
    means = np.stack([normalised[labels == k].mean(axis=0) for k in range(CLASSES)])

    def precision(residuals: np.ndarray) -> np.ndarray:
        covariance = residuals.T @ residuals / len(residuals)
        mean_variance = np.trace(covariance) / DIMENSIONS
        return np.linalg.inv((1 - ood.SHRINKAGE) * covariance + ood.SHRINKAGE * mean_variance * np.eye(DIMENSIONS))

    within, overall = precision(normalised - means[labels]), precision(normalised - normalised.mean(axis=0))
    points = normalise(np.vstack([clusters.sample(10)[0], clusters.foreign(10)]))
    differences = points[:, np.newaxis] - means[np.newaxis]
    to_classes = np.einsum("nkp,pq,nkq->nk", differences, within, differences).min(axis=1)
    centred = points - normalised.mean(axis=0)
    expected = to_classes - np.einsum("np,pq,nq->n", centred, overall, centred)
    assert detector.method == METHOD
    np.testing.assert_allclose(detector.score(points), expected, atol=1e-3 * np.abs(expected).max())  # float16 directions


def test_the_directions_kept_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """However many photos trained the model, ``ood.npz`` holds at most MAX_DIRECTIONS per covariance."""
    monkeypatch.setattr(ood, "MAX_DIRECTIONS", 8)
    clusters = Clusters()
    train, labels = clusters.sample(300)
    detector = fit_detector(train, labels, clusters.sample(40)[0], 0.98)
    for precision in (detector.class_precision, detector.background_precision):
        assert precision.directions.shape == (DIMENSIONS, 8) and precision.directions.dtype == np.float16
    detector.save(tmp_path / "ood.npz")
    assert OutlierDetector.load(tmp_path / "ood.npz").class_precision.weights.size == 8
    inside, outside = clusters.sample(100)[0], clusters.foreign(100)
    assert auroc(detector.score(inside), detector.score(outside)) > 0.99


def stored(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def detector_arrays() -> dict[str, np.ndarray]:
    clusters = Clusters()
    train, labels = clusters.sample(60)
    detector = fit_detector(train, labels, clusters.sample(20)[0], 0.98)
    with io.BytesIO() as buffer:
        detector.save(buffer)
        buffer.seek(0)
        with np.load(buffer) as saved:
            return {name: saved[name] for name in saved.files}


def test_a_pickled_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    arrays = {**detector_arrays(), "class_means": np.array([object()], dtype=object)}
    path = tmp_path / "ood.npz"
    np.savez(path, allow_pickle=True, **arrays)
    with pytest.raises(ValueError, match="Python objects"):
        OutlierDetector.load(path)


def test_an_array_header_claiming_more_than_the_file_holds_is_refused_before_loading(tmp_path: Path) -> None:
    """A 200-byte member that says it is a (10^6, 10^6) float64 array: never allocated."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    path = tmp_path / "ood.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in detector_arrays().items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(f"{name}.npy", header.getvalue() if name == "background_mean" else buffer.getvalue())
    with pytest.raises(ValueError, match="declares more data"):
        OutlierDetector.load(path)


def test_arrays_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    arrays = detector_arrays()
    for name, bad in (("class_spreads", np.ones(CLASSES + 1)), ("scales", np.array([1.0, 0.0])),
                      ("class_means", np.full((CLASSES, DIMENSIONS), np.nan)), ("method", np.asarray("anything")),
                      ("class_precision_weights", np.ones(arrays["class_precision_weights"].size)),
                      ("background_precision_directions", np.ones((DIMENSIONS + 1, 2))),
                      ("background_precision_isotropic", np.asarray(0.0))):
        with pytest.raises(ValueError):
            OutlierDetector.load(stored(tmp_path / f"{name}.npz", {**arrays, name: bad}))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        OutlierDetector.load(tmp_path / "text.npz")


def test_mahalanobis_score_matches_the_full_precision_matrix() -> None:
    ood_methods = pytest.importorskip("benchmarks.ood_methods", reason="scikit-learn (requirements-bench.txt)")
    clusters = Clusters()
    train, labels = clusters.sample(150)
    normalised = normalise(train)
    means = np.stack([normalised[labels == k].mean(axis=0) for k in range(CLASSES)])
    score = ood_methods.mahalanobis(normalised - means[labels], means)
    residuals = normalised - means[labels]
    mu = (residuals**2).sum() / residuals.size
    shrinkage = score.shrinkage
    covariance = (1 - shrinkage) * residuals.T @ residuals / len(residuals) + shrinkage * mu * np.eye(DIMENSIONS)
    points = clusters.foreign(10)
    differences = normalise(points)[:, np.newaxis] - means[np.newaxis]
    expected = np.einsum("nkp,pq,nkq->nk", differences, np.linalg.inv(covariance), differences).min(axis=1)
    assert 0.0 < shrinkage < 1.0
    np.testing.assert_allclose(score(points), expected, rtol=1e-9)


def test_a_class_without_training_features_is_refused() -> None:
    features, labels = Clusters().sample(30)
    with pytest.raises(ValueError, match="every class"):
        fit_detector(features, np.where(labels == 1, 2, labels), features, 0.97)


def test_auroc_of_separated_identical_and_tied_scores() -> None:
    auroc = pytest.importorskip("benchmarks.ood_methods", reason="scikit-learn (requirements-bench.txt)").auroc
    assert auroc(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.9])) == 1.0
    assert auroc(np.array([0.5, 0.9]), np.array([0.1, 0.2, 0.3])) == 0.0
    assert auroc(np.full(7, 0.4), np.full(5, 0.4)) == 0.5
    rng = np.random.default_rng(0)
    inside, outside = rng.integers(0, 5, 50).astype(float), rng.integers(0, 7, 60).astype(float)
    pairwise = np.mean((outside[:, None] > inside[None]) + 0.5 * (outside[:, None] == inside[None]))
    assert auroc(inside, outside) == pytest.approx(pairwise)


def test_the_detector_needs_no_tensorflow() -> None:
    """The app scores photos with it after a LiteRT forward pass, without importing TensorFlow."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, bird_model.ood; print('tensorflow' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert loaded.stdout.strip() == "False"


def test_thousands_of_photos_against_hundreds_of_classes_score_in_bounded_memory() -> None:
    """What training does on 20,000 photos of 500 species: all at once it would take 2 GB here (40 GB there)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    classes, photos = rng.normal(size=(500, 256)), rng.normal(size=(2000, 256))
    detector = fit_detector(classes, np.arange(500), classes, target_pass_rate=0.95)
    tracemalloc.start()
    scores = detector.score(photos)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB"
    one_by_one = np.array([detector.score(photo)[0] for photo in photos[:50]])
    np.testing.assert_array_equal(scores[:50], one_by_one)
    assert detector.score(np.empty((0, 256))).shape == (0,)

"""Which conversion the app serves as ``model.tflite``: float32 or 8-bit, chosen by measurement at export.

An 8-bit model is a quarter of the float32 file (a Space downloads it at every cold start)
and may run faster, but its rounding may change answers. So every run converts all three
(:data:`VARIANTS`), runs each over the validation photos and a few reference outliers, and
applies one written rule (:func:`choose`):

- an 8-bit variant qualifies when its validation accuracy is at most :data:`MAX_ACCURACY_DROP`
  below the float32 model's, and it calls unknown every reference outlier the float32 model
  calls unknown (each variant's threshold calibrated on its own validation features, as the
  served one's is): like accuracy, a verdict may get better, never worse;
- the fastest qualifying 8-bit variant (median forward pass, variants timed in turns on the
  same photo) is served; the float32 model only when none qualifies.

The float32 conversion stays in the folder as :data:`bird_model.artifacts.FLOAT_LITERT_FILE` beside a served
8-bit one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bird_model.artifacts import FLOAT_LITERT_FILE, LITERT_FILE

from bird_model.data import DatasetError
from bird_model.evaluation import ServingVariant
from bird_model.formats import FORMAT_NAMES, SUPPORTED_EXTENSIONS
from bird_model.images import ImageError, load_rgb
from bird_model.litert import QUANTIZATIONS, LiteRTModel, export_litert, export_quantized
from bird_model.ood import OutlierDetector, calibrated

if TYPE_CHECKING:
    import keras

FLOAT = "float32"
VARIANTS = (FLOAT, *QUANTIZATIONS)
MAX_ACCURACY_DROP = 0.005
"""Validation accuracy an 8-bit variant may lose against float32 and still be served (0.5 points)."""
MAX_OWN_OUTLIERS = 500
"""Photos :func:`read_own_outliers` reads: 75 MB of pixels at 224 px, held from the start of training."""

FLAT_COLOURS = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0), (0, 0, 255),
                (255, 255, 0), (135, 206, 235))
NOISE_GRAINS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class VariantRun:
    """One conversion's answers for the validation photos and the reference outliers."""

    name: str
    size_bytes: int
    validation_features: np.ndarray
    validation_probabilities: np.ndarray
    outlier_features: np.ndarray
    milliseconds: np.ndarray
    """Forward-pass time of every photo, validation photos then outliers."""


def convert_variants(model: keras.Model, folder: Path, calibration: np.ndarray,
                     quantizations: tuple[str, ...] = QUANTIZATIONS) -> dict[str, Path]:
    """Every variant of ``model`` as a file in ``folder``: float32 under :data:`FLOAT_LITERT_FILE`
    (checked against Keras), the 8-bit ones named in ``quantizations`` under scratch names that
    :func:`install_served` removes (none: float32 is served, and training saves their conversions' time).

    ``calibration``: uint8 training photos whose activation ranges the full-integer model is fitted to.
    """
    paths = {FLOAT: folder / FLOAT_LITERT_FILE}
    export_litert(model, paths[FLOAT])
    for quantization in quantizations:
        paths[quantization] = folder / f"model-{quantization}.tflite"
        export_quantized(model, paths[quantization], quantization, calibration)
    return paths


def install_served(reports: list[ServingVariant], paths: dict[str, Path], folder: Path) -> None:
    """Move the served variant to ``model.tflite``, keep the float32 file beside an 8-bit one (never
    twice: a served float32 is only ``model.tflite``), drop the other 8-bit ones."""
    served = next(report.name for report in reports if report.served)
    paths[served].replace(folder / LITERT_FILE)
    for name, path in paths.items():
        if name not in (FLOAT, served):
            path.unlink()


def reference_outliers(size: int) -> np.ndarray:
    """Pictures that are no bird, made here so every export has them: flat colours and uniform
    noise at several grain sizes, colour and gray. The benchmark (``benchmarks/quantization.py``)
    adds real photos: other birds and the non-bird pictures scikit-learn and scikit-image ship."""
    rng = np.random.default_rng(0)
    pictures = [np.full((size, size, 3), colour, np.uint8) for colour in FLAT_COLOURS]
    for grain in NOISE_GRAINS:
        cells = -(-size // grain)
        for channels in (3, 1):
            noise = rng.integers(0, 256, size=(cells, cells, channels), dtype=np.uint8)
            noise = np.repeat(np.repeat(noise, grain, axis=0), grain, axis=1)[:size, :size]
            pictures.append(np.broadcast_to(noise, (size, size, 3)).copy())
    return np.stack(pictures)


def read_own_outliers(folder: Path, size: int) -> np.ndarray:
    """The trainer's photos of things that are none of the classes (``train.py --outlier-photos``:
    other birds, say), decoded as serving decodes; unreadable files are skipped and counted, links
    are not followed, and at most :data:`MAX_OWN_OUTLIERS` are read (the first by name).

    Raises :class:`bird_model.data.DatasetError` for a folder without one usable photo, before training.
    """
    if not folder.is_dir():
        raise DatasetError(f"--outlier-photos {folder}: there is no such folder.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS
                   and p.is_file() and not p.is_symlink())
    pixels, unreadable = [], 0
    for path in files[:MAX_OWN_OUTLIERS]:
        try:
            pixels.append(load_rgb(path, size))
        except ImageError:
            unreadable += 1
    if not pixels:
        raise DatasetError(f"--outlier-photos {folder}: no photo in it could be read ({FORMAT_NAMES}).")
    skipped = []
    if unreadable:
        skipped.append(f"{unreadable} unreadable")
    if len(files) > MAX_OWN_OUTLIERS:
        skipped.append(f"{len(files) - MAX_OWN_OUTLIERS} beyond the first {MAX_OWN_OUTLIERS}")
    print(f"Outlier photos: {len(pixels)} from {folder}" + (f" ({', '.join(skipped)}: skipped)" if skipped else ""))
    return np.stack(pixels)


def run_variants(paths: dict[str, Path], validation: Iterable[np.ndarray], outliers: np.ndarray) -> list[VariantRun]:
    """Every variant over the same photos, one photo at a time, the variants taking turns.

    ``validation`` yields uint8 ``(n, size, size, 3)`` batches (streamed: a large validation split
    never sits in memory whole); taking turns photo by photo makes a busy neighbour on a shared
    machine slow all variants alike, so their times compare.
    """
    models = {name: LiteRTModel(path) for name, path in paths.items()}
    answers: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {name: [] for name in models}
    outlier_start = None
    for batch in [*validation, None, outliers]:
        if batch is None:
            outlier_start = len(next(iter(answers.values())))
            continue
        for photo in np.asarray(batch, dtype=np.uint8):
            for name, model in models.items():
                started = time.perf_counter()
                answer = model.outputs(photo[np.newaxis])
                answers[name].append((answer.features[0], answer.probabilities[0], time.perf_counter() - started))
    runs = []
    for name, rows in answers.items():
        features = np.stack([row[0] for row in rows])
        probabilities = np.stack([row[1] for row in rows])
        runs.append(VariantRun(
            name=name,
            size_bytes=paths[name].stat().st_size,
            validation_features=features[:outlier_start],
            validation_probabilities=probabilities[:outlier_start],
            outlier_features=features[outlier_start:],
            milliseconds=np.array([row[2] for row in rows]) * 1000,
        ))
    return runs


def choose(
    runs: list[VariantRun], labels: np.ndarray, detector: OutlierDetector, target_pass_rate: float, own_outliers: int = 0
) -> list[ServingVariant]:
    """Apply the module's rule; exactly one report comes back with ``served`` set.

    The last ``own_outliers`` outliers of each run are the trainer's photos (:func:`read_own_outliers`):
    the rule counts them with the reference ones, the reports apart.
    """
    by_name = {run.name: run for run in runs}
    reference = by_name[FLOAT]
    float_accuracy = _accuracy(reference, labels)
    float_verdicts = _outlier_verdicts(reference, detector, target_pass_rate)
    qualifying = {
        run.name for run in runs
        if run.name != FLOAT
        and _accuracy(run, labels) >= float_accuracy - MAX_ACCURACY_DROP - 1e-12
        and np.all(_outlier_verdicts(run, detector, target_pass_rate)[float_verdicts])
    }
    served = min(qualifying, key=lambda name: _p50(by_name[name])) if qualifying else FLOAT
    return [
        ServingVariant(
            name=run.name,
            size_bytes=run.size_bytes,
            accuracy=_accuracy(run, labels),
            p50_ms=_p50(run),
            outliers_unknown=int(verdicts[: len(verdicts) - own_outliers].sum()),
            outliers=len(verdicts) - own_outliers,
            qualifies=run.name == FLOAT or run.name in qualifying,
            served=run.name == served,
            own_outliers_unknown=int(verdicts[len(verdicts) - own_outliers :].sum()),
            own_outliers=own_outliers,
        )
        for run, verdicts in ((run, _outlier_verdicts(run, detector, target_pass_rate)) for run in runs)
    ]


def _accuracy(run: VariantRun, labels: np.ndarray) -> float:
    return float(np.mean(run.validation_probabilities.argmax(axis=1) == labels))


def _outlier_verdicts(run: VariantRun, detector: OutlierDetector, target_pass_rate: float) -> np.ndarray:
    return calibrated(detector, run.validation_features, target_pass_rate).is_unknown(run.outlier_features)


def _p50(run: VariantRun) -> float:
    return float(np.median(run.milliseconds))

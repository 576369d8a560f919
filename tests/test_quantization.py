"""The served model.tflite is chosen by the written rule: 8-bit only when it holds accuracy and verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bird_model.artifacts import FLOAT_LITERT_FILE, LITERT_FILE
from bird_model.ood import fit_detector
from bird_model.quantization import FLOAT, VariantRun, choose, install_served, reference_outliers

CLASSES, DIMENSIONS, VALIDATION = 3, 32, 40


@pytest.fixture(scope="module")
def world() -> dict[str, np.ndarray]:
    """Clustered features of three classes, 40 validation photos, and outliers far from every class."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.0, 3.0, size=(CLASSES, DIMENSIONS))
    labels = np.arange(VALIDATION) % CLASSES
    train_labels = np.arange(150) % CLASSES
    return {
        "train": np.abs(centres[train_labels] + rng.normal(scale=0.3, size=(150, DIMENSIONS))),
        "train_labels": train_labels,
        "validation": np.abs(centres[labels] + rng.normal(scale=0.3, size=(VALIDATION, DIMENSIONS))),
        "labels": labels,
        "outliers": np.abs(rng.uniform(0.0, 3.0, size=(10, DIMENSIONS)) * 4),
    }


def run(world: dict[str, np.ndarray], name: str, milliseconds: float, wrong: int = 0, outliers_inside: int = 0) -> VariantRun:
    """A variant that answers like the float model except for ``wrong`` validation photos, and
    ``outliers_inside`` outliers whose features land on a training class."""
    probabilities = np.eye(CLASSES)[world["labels"]]
    probabilities[:wrong] = np.roll(probabilities[:wrong], 1, axis=1)
    outliers = world["outliers"].copy()
    outliers[:outliers_inside] = world["validation"][:outliers_inside]
    return VariantRun(name, 1000, world["validation"], probabilities, outliers,
                      np.full(VALIDATION + len(outliers), milliseconds))


def served(world: dict[str, np.ndarray], runs: list[VariantRun]) -> str:
    detector = fit_detector(world["train"], world["train_labels"], world["validation"], 0.98)
    reports = choose(runs, world["labels"], detector, 0.98)
    assert sum(report.served for report in reports) == 1
    return next(report.name for report in reports if report.served)


def test_the_fastest_8_bit_variant_that_holds_is_served(world: dict[str, np.ndarray]) -> None:
    runs = [run(world, FLOAT, 50.0), run(world, "dynamic-range", 90.0), run(world, "full-integer", 30.0)]
    assert served(world, runs) == "full-integer"
    runs = [run(world, FLOAT, 50.0), run(world, "dynamic-range", 90.0), run(world, "full-integer", 95.0)]
    assert served(world, runs) == "dynamic-range"


def test_a_variant_losing_a_validation_photo_in_40_is_refused(world: dict[str, np.ndarray]) -> None:
    """One photo of 40 is 2.5 points, over the 0.5 allowed."""
    runs = [run(world, FLOAT, 50.0), run(world, "dynamic-range", 90.0), run(world, "full-integer", 30.0, wrong=1)]
    assert served(world, runs) == "dynamic-range"


def test_a_variant_that_passes_an_outlier_the_float_model_rejects_is_refused(world: dict[str, np.ndarray]) -> None:
    runs = [run(world, FLOAT, 50.0), run(world, "dynamic-range", 90.0, outliers_inside=1),
            run(world, "full-integer", 30.0, wrong=2)]
    assert served(world, runs) == FLOAT


@pytest.mark.parametrize(("wrong", "served", "files"), [
    (0, "full-integer", [FLOAT_LITERT_FILE, LITERT_FILE]),
    (5, FLOAT, [LITERT_FILE]),
])
def test_installing_serves_the_choice_and_keeps_float32_once(
    world: dict[str, np.ndarray], tmp_path: Path, wrong: int, served: str, files: list[str]
) -> None:
    """Float32 stays beside a served 8-bit model; served itself, it is not written twice (8.9 MB at 224 px)."""
    paths = {FLOAT: tmp_path / FLOAT_LITERT_FILE, "dynamic-range": tmp_path / "a.tflite", "full-integer": tmp_path / "b.tflite"}
    for name, path in paths.items():
        path.write_bytes(name.encode())
    runs = [run(world, FLOAT, 50.0), run(world, "dynamic-range", 90.0, wrong=wrong),
            run(world, "full-integer", 30.0, wrong=wrong)]
    detector = fit_detector(world["train"], world["train_labels"], world["validation"], 0.98)
    install_served(choose(runs, world["labels"], detector, 0.98), paths, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    assert (tmp_path / LITERT_FILE).read_bytes() == served.encode()


def test_reference_outliers_are_model_sized_photos() -> None:
    pictures = reference_outliers(48)
    assert pictures.dtype == np.uint8 and pictures.shape[1:] == (48, 48, 3) and len(pictures) >= 20
    assert len({picture.tobytes() for picture in pictures}) == len(pictures)

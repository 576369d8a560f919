"""The model folder: the one unit that training writes, the Hub stores and the app serves.

A folder holds ``model.keras`` with its label map, config, metrics, history, training curves, confusion
matrix, dataset report, split, model card and example photos. It is written to a staging
folder and moved into place only when complete, so a failed run never leaves half a model
where a good one was, and it is validated as a whole before it is published or served: a
model paired with another run's labels would give confident wrong answers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bird_model.evaluation import Metrics
from bird_model.settings import LATEST_LINK, RUNS_DIR

FORMAT_VERSION = 1

MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
"""The served conversion: float32 or 8-bit, whichever :mod:`bird_model.quantization` chose."""
FLOAT_LITERT_FILE = "model-float32.tflite"
"""The float32 conversion, checked against ``model.keras``; kept beside an 8-bit ``model.tflite``."""
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"
DATASET_REPORT_FILE = "dataset_report.json"
SPLIT_FILE = "split.json"
OOD_FILE = "ood.npz"
BASELINE_FILE = "baseline.json"
CARD_FILE = "README.md"
EXAMPLES_DIR = "examples"

REQUIRED_FILES = (LABELS_FILE, CONFIG_FILE, METRICS_FILE, CARD_FILE)
"""Besides a model: ``model.keras`` (the source of truth) or its serving conversion ``model.tflite``."""

MAX_DISPLAY_NAME = 100
"""Longest display name a ``labels.LANG.json`` may hold: it is shown on the page as it is."""


def display_names_file(language: str) -> str:
    """``labels.LANG.json``: the classes' names in one language, a list in the order of ``labels.json``."""
    return f"labels.{language}.json"


SERVING_PATTERNS = [CARD_FILE, LITERT_FILE, LABELS_FILE, display_names_file("*"), CONFIG_FILE, METRICS_FILE, OOD_FILE,
                    BASELINE_FILE, f"{EXAMPLES_DIR}/*"]
"""What the app needs from a published folder; downloads are restricted to these. ``model.keras``
is fetched only for a folder without ``model.tflite``, halving what a Space downloads."""


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or inconsistent; the message names the problem."""


@dataclass(frozen=True)
class ModelFolder:
    """A validated model folder, without the (slow to load) model itself."""

    path: Path
    classes: list[str]
    config: dict[str, Any]
    metrics: Metrics

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    def examples(self) -> list[Path]:
        folder = self.path / EXAMPLES_DIR
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def example_class(self, photo: Path) -> str:
        """The class an example photo shows (:func:`bird_model.dataset_files.save_examples` names each after its class),
        or its file name for one it did not write."""
        return {file_stem(name): name for name in self.classes}.get(photo.stem, photo.stem)


def new_run_folder(runs: Path = RUNS_DIR) -> Path:
    """A fresh, time-stamped folder name under ``runs`` (UTC, sortable)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, suffix = runs / stamp, 1
    while candidate.exists():
        suffix += 1
        candidate = runs / f"{stamp}-{suffix}"
    return candidate


def point_latest(folder: Path, link: Path = LATEST_LINK) -> None:
    """Make ``link`` a relative symlink to ``folder``, replaced atomically."""
    temporary = link.with_name(f".{link.name}.new")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(Path(os.path.relpath(folder.resolve(), link.parent.resolve())))
    temporary.replace(link)


def check_output_free(output: Path, overwrite: bool) -> None:
    """Refuse before training to replace an existing run unless the user asked for it."""
    if output.exists() and not output.is_dir():
        raise ModelFolderError(f"--output {output} exists and is not a folder.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ModelFolderError(
            f"--output {output} already holds another run; choose a new folder or pass --overwrite to replace it."
        )


def staging_folder(output: Path) -> Path:
    """A fresh sibling of ``output`` to write into, so the final move is a same-disk rename."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    staging.chmod(0o755)
    return staging


def commit_folder(staging: Path, output: Path) -> None:
    """Replace ``output`` with the completed ``staging`` folder."""
    read_model_folder(staging)
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def labels_document(classes: list[str]) -> dict[str, dict[str, Any]]:
    return {
        "id2label": {str(index): name for index, name in enumerate(classes)},
        "label2id": {name: index for index, name in enumerate(classes)},
    }


def read_model_folder(path: Path) -> ModelFolder:
    """Load and cross-check a folder's metadata; raises :class:`ModelFolderError` with the reason."""
    if not path.is_dir():
        raise ModelFolderError(f"Model folder not found: {path}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not (path / MODEL_FILE).is_file() and not (path / LITERT_FILE).is_file():
        missing.insert(0, MODEL_FILE)
    if missing:
        raise ModelFolderError(f"Model folder {path} is incomplete: missing {', '.join(missing)}.")
    labels = _read_json(path / LABELS_FILE)
    config = _read_json(path / CONFIG_FILE)
    metrics = _read_json(path / METRICS_FILE)
    classes = _classes_from_labels(labels, path)
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path / CONFIG_FILE} has format_version {config.get('format_version')!r}; "
            f"this version of the app reads {FORMAT_VERSION}."
        )
    if config.get("classes") != classes:
        raise ModelFolderError(
            f"{path / LABELS_FILE} does not match {CONFIG_FILE}: the label map lists {classes}, "
            f"the config {config.get('classes')}. The files come from different runs."
        )
    try:
        typed_metrics = Metrics.from_json(metrics)
    except (KeyError, TypeError) as error:
        raise ModelFolderError(f"{path / METRICS_FILE} is not a metrics file of this format ({error}).") from error
    return ModelFolder(path=path, classes=classes, config=config, metrics=typed_metrics)


def _classes_from_labels(labels: dict[str, Any], path: Path) -> list[str]:
    try:
        id2label = {int(index): str(name) for index, name in labels["id2label"].items()}
    except (KeyError, AttributeError, ValueError) as error:
        raise ModelFolderError(f"{path / LABELS_FILE} is not a label map with an 'id2label' object.") from error
    if sorted(id2label) != list(range(len(id2label))) or not id2label:
        raise ModelFolderError(f"{path / LABELS_FILE} must number its classes 0..N-1 without gaps.")
    classes = [id2label[index] for index in range(len(id2label))]
    if len(set(classes)) != len(classes):
        raise ModelFolderError(f"{path / LABELS_FILE} lists a class name twice.")
    return classes


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} should hold a JSON object.")
    return data


def file_stem(label: str) -> str:
    """A portable file name for a class (class names can hold any character)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label).strip("_") or "class"

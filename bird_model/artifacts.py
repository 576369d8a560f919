"""The model folder: the one unit that training writes, the Hub stores and the app serves.

A folder holds the Keras model in Keras' own directory layout (``config.json``, ``model.weights.h5``,
``metadata.json``: what ``keras.saving.load_model("hf://OWNER/NAME")`` reads from a Hub repo's root)
with its label map, run config (``run_config.json``), metrics, history, training curves, confusion
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
from bird_model.settings import LATEST_LINK, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, RUNS_DIR

FORMAT_VERSION = 1

KERAS_CONFIG_FILE = "config.json"
KERAS_WEIGHTS_FILE = "model.weights.h5"
KERAS_METADATA_FILE = "metadata.json"
KERAS_FILES = (KERAS_CONFIG_FILE, KERAS_WEIGHTS_FILE, KERAS_METADATA_FILE)
"""The Keras model as ``keras.saving.save_model(model, folder, zipped=False)`` writes it: the names
Keras' loader reads from a folder or an ``hf://`` repo root, so the Hub's own "Use this model"
snippet loads a published folder as it is."""
RUN_CONFIG_FILE = "run_config.json"
"""Image size, classes, versions, options and data sources of the run (``config.json`` is Keras')."""
LEGACY_MODEL_FILE = "model.keras"
LEGACY_CONFIG_FILE = "config.json"
"""Folders written before the Keras layout kept the model zipped in ``model.keras`` and the run
config in ``config.json``; they are still read and served."""
LITERT_FILE = "model.tflite"
"""The served conversion: float32 or 8-bit, whichever :mod:`bird_model.quantization` chose."""
FLOAT_LITERT_FILE = "model-float32.tflite"
"""The float32 conversion, checked against the Keras model; kept beside an 8-bit ``model.tflite``
only (when float32 is served, ``model.tflite`` is that file: :attr:`ModelFolder.float_litert_path`)."""
LABELS_FILE = "labels.json"
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

REQUIRED_FILES = (LABELS_FILE, METRICS_FILE, CARD_FILE)
"""Besides a run config and a model: the Keras model (the source of truth) or its serving conversion
``model.tflite``."""

MAX_DISPLAY_NAME = 100
"""Longest display name a ``labels.LANG.json`` may hold: it is shown on the page as it is."""


def display_names_file(language: str) -> str:
    """``labels.LANG.json``: the classes' names in one language, a list in the order of ``labels.json``."""
    return f"labels.{language}.json"


SERVING_PATTERNS = [CARD_FILE, LITERT_FILE, LABELS_FILE, display_names_file("*"), RUN_CONFIG_FILE, METRICS_FILE,
                    OOD_FILE, BASELINE_FILE, f"{EXAMPLES_DIR}/*"]
"""What the app needs from a published folder; downloads are restricted to these. The Keras model is
fetched only for a folder without ``model.tflite``, halving what a Space downloads, and a legacy
folder's ``config.json`` only when it has no ``run_config.json`` (today it is Keras' 170 KB config)."""
KERAS_PATTERNS = [*KERAS_FILES, LEGACY_MODEL_FILE]
"""The Keras model in either layout, for a folder without ``model.tflite``."""


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or inconsistent; the message names the problem."""


MAX_JSON_BYTES = 64 * 2**20
"""Largest metadata file :func:`read_model_folder` reads (a 500-class ``metrics.json`` is about 2 MB)."""
MAX_FACT_CHARS = 200
"""Longest name, date or base-weights entry the app shows from a run config."""


@dataclass(frozen=True)
class RunFacts:
    """What the app shows of the run (its name, date, base weights, training photos), typed and
    checked once when the folder is read: a downloaded folder's run config is a stranger's file.
    A fact an older folder lacks keeps its default; one of the wrong type stops the start."""

    model_name: str = "model"
    created_at: str = "?"
    base_weights: str | None = None
    """``imagenet``, a weights file's name, or None for random weights (recorded as ``none``)."""
    training_photos: int = 0

    @classmethod
    def of(cls, config: dict[str, Any], where: Path) -> RunFacts:
        """Raises :class:`ModelFolderError` naming the first fact of the wrong type."""
        counts = _fact(config, ("dataset", "split_counts", "train"), dict, {}, where)
        if not all(type(count) is int and count >= 0 for count in counts.values()):
            raise ModelFolderError(f"{where} has dataset.split_counts.train counts that are not whole numbers.")
        weights = _fact(config, ("base_weights",), str, None, where)
        return cls(
            model_name=_fact(config, ("model_name",), str, cls.model_name, where),
            created_at=_fact(config, ("created_at",), str, cls.created_at, where),
            base_weights=None if weights == "none" else weights,
            training_photos=sum(counts.values()),
        )


def _fact(config: dict[str, Any], keys: tuple[str, ...], kind: type, default: Any, where: Path) -> Any:
    """``config[keys[0]][keys[1]]...`` if it is a ``kind`` (a string at most :data:`MAX_FACT_CHARS`), ``default`` if absent."""
    value: Any = config
    for key in keys:
        if not isinstance(value, dict):
            raise ModelFolderError(f"{where} has {'.'.join(keys)} inside something that is not a JSON object.")
        if value.get(key) is None:
            return default
        value = value[key]
    if type(value) is not kind or kind is str and len(value) > MAX_FACT_CHARS:
        shown = repr(value)[:60]
        raise ModelFolderError(f"{where} has {'.'.join(keys)} {shown}; expected a {'text' if kind is str else 'JSON object'}"
                               + (f" of at most {MAX_FACT_CHARS} characters." if kind is str else "."))
    return value


@dataclass(frozen=True)
class ModelFolder:
    """A validated model folder, without the (slow to load) model itself."""

    path: Path
    classes: list[str]
    config: dict[str, Any]
    metrics: Metrics
    facts: RunFacts = RunFacts()
    """The run config's facts the app shows, checked (:class:`RunFacts`)."""
    config_file: str = RUN_CONFIG_FILE
    """Where the run config was read from: :data:`RUN_CONFIG_FILE`, or :data:`LEGACY_CONFIG_FILE` in a legacy folder."""

    @property
    def model_path(self) -> Path:
        """What ``keras.saving.load_model`` opens: the folder itself (Keras' layout), or a legacy ``model.keras``."""
        return self.path if self.config_file == RUN_CONFIG_FILE else self.path / LEGACY_MODEL_FILE

    @property
    def has_keras_model(self) -> bool:
        return all((self.path / name).is_file() for name in keras_model_files(self.config_file))

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def float_litert_path(self) -> Path:
        """The float32 LiteRT conversion: :data:`FLOAT_LITERT_FILE` beside an 8-bit ``model.tflite``,
        else ``model.tflite`` itself (float32 served, or a folder from before 8-bit conversions)."""
        beside = self.path / FLOAT_LITERT_FILE
        return beside if beside.is_file() else self.path / LITERT_FILE

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
    """Load and cross-check a folder's metadata; raises :class:`ModelFolderError` with the reason.

    A folder may be a stranger's download from the Hub, so what is read is checked, not trusted:
    the image size must be one the model can take, the classes those of the label map.
    """
    if not path.is_dir():
        raise ModelFolderError(f"Model folder not found: {path}")
    config_file = RUN_CONFIG_FILE if (path / RUN_CONFIG_FILE).is_file() else LEGACY_CONFIG_FILE
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not (path / config_file).is_file():
        missing.insert(0, RUN_CONFIG_FILE)
    if not (path / LITERT_FILE).is_file():
        missing[:0] = [name for name in keras_model_files(config_file) if not (path / name).is_file()]
    if missing:
        raise ModelFolderError(f"Model folder {path} is incomplete: missing {', '.join(missing)}.")
    labels = _read_json(path / LABELS_FILE)
    config = _read_json(path / config_file)
    metrics = _read_json(path / METRICS_FILE)
    classes = _classes_from_labels(labels, path)
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path / config_file} has format_version {config.get('format_version')!r}; "
            f"this version of the app reads {FORMAT_VERSION}."
        )
    if config.get("classes") != classes:
        raise ModelFolderError(
            f"{path / LABELS_FILE} does not match {config_file}: the label map lists {classes}, "
            f"the config {config.get('classes')}. The files come from different runs."
        )
    size = config.get("image_size")
    if type(size) is not int or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ModelFolderError(
            f"{path / config_file} has image_size {size!r}; expected a whole number of pixels from "
            f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}."
        )
    try:
        typed_metrics = Metrics.from_json(metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFolderError(f"{path / METRICS_FILE} is not a metrics file of this format ({error}).") from error
    facts = RunFacts.of(config, path / config_file)
    return ModelFolder(path=path, classes=classes, config=config, metrics=typed_metrics, facts=facts,
                       config_file=config_file)


def keras_model_files(config_file: str) -> tuple[str, ...]:
    """The files that hold the Keras model in a folder whose run config is ``config_file``."""
    return (KERAS_CONFIG_FILE, KERAS_WEIGHTS_FILE) if config_file == RUN_CONFIG_FILE else (LEGACY_MODEL_FILE,)


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
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ModelFolderError(f"{path} is larger than a model folder's metadata can be ({MAX_JSON_BYTES // 2**20} MB).")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} should hold a JSON object.")
    return data


def file_stem(label: str) -> str:
    """A portable file name for a class (class names can hold any character)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label).strip("_") or "class"

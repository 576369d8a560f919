"""Checkpoints of an unfinished training run, so that ``train.py --resume`` continues it.

A notebook that disconnects or a preemptible machine that is taken back should not cost the
epochs already trained, and the resumed run must end where the uninterrupted one would. At each
epoch end the run writes, beside its output folder (``OUTPUT.checkpoint/``), everything that
decides the rest of the run: the classifier's variables (the augmentation's and dropout's random
state included), the optimizer's (moments, step, learning rate), early stopping's best weights,
its counter and the learning-rate reduction's (``bird_model.plateaus``), which phase and epoch it
reached (the epoch also fixes the shuffle order: ``inputs.epoch_order``) and the history so far.
The folder goes once the model folder is complete. In a multi-worker run only the chief writes it.

A checkpoint continues only the run that made it: the options and the dataset's fingerprint
are stored with it and compared on ``--resume``. Light to import (no TensorFlow), so that
"nothing to resume" is said at once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bird_model.plateaus import EarlyStopping, LearningRate

SUFFIX = ".checkpoint"
STATE_FILE = "state.json"
ARRAYS_PREFIX = "arrays-"

Histories = dict[str, dict[str, Any]]
"""Per phase, each metric's list of epoch values, and ``kept_epoch``: the epoch whose weights the phase kept."""


class CheckpointError(ValueError):
    """Nothing to resume, a checkpoint of other options, or one in the way; the message says what to do."""


@dataclass(frozen=True)
class Progress:
    """How far a run got: ``epochs_done`` epochs of ``phase``, every finished epoch's metrics, and,
    mid-phase, the phase's early stopping and learning rate.

    ``phase`` is ``phase1``, ``phase2`` or ``done`` (trained, the model folder still to write).
    """

    phase: str = "phase1"
    epochs_done: int = 0
    histories: Histories = field(default_factory=dict)
    stopping: EarlyStopping | None = None
    learning_rate: LearningRate | None = None

    def describe(self) -> str:
        if self.phase == "done":
            return "training finished; writing the model folder"
        return f"phase {self.phase[-1]} at epoch {self.epochs_done + 1}"

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "epochs_done": self.epochs_done, "histories": self.histories,
                "stopping": self.stopping.to_json() if self.stopping else None,
                "learning_rate": self.learning_rate.to_json() if self.learning_rate else None}

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> Progress:
        return cls(
            phase=saved["phase"], epochs_done=saved["epochs_done"], histories=saved["histories"],
            stopping=EarlyStopping.from_json(saved["stopping"]) if saved.get("stopping") else None,
            learning_rate=LearningRate.from_json(saved["learning_rate"]) if saved.get("learning_rate") else None,
        )


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint folder of one run, and what it was started with (``run``: options and dataset)."""

    folder: Path
    run: dict[str, Any]

    def progress(self) -> Progress:
        """Where the last checkpoint stands; a fresh run's is phase 1, epoch 0."""
        state = self.folder / STATE_FILE
        if not state.is_file():
            return Progress()
        return Progress.from_json(json.loads(state.read_text(encoding="utf-8")))

    def save(self, progress: Progress, arrays: dict[str, np.ndarray]) -> None:
        """Write the arrays under a name of this epoch, then the state file that names them, then drop older arrays.

        Each file is written aside and renamed into place, and the state file's rename is the
        one step that moves the checkpoint on: a run killed at any moment leaves a state file
        and the very arrays it was saved with.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{ARRAYS_PREFIX}{progress.phase}-{progress.epochs_done}.npz"
        with (self.folder / f"next.{name}").open("wb") as file:
            np.savez(file, **arrays)
        os.replace(self.folder / f"next.{name}", self.folder / name)
        state = {"run": self.run, **progress.to_json(), "arrays": name}
        (self.folder / f"next.{STATE_FILE}").write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(self.folder / f"next.{STATE_FILE}", self.folder / STATE_FILE)
        for old in self.folder.glob(f"{ARRAYS_PREFIX}*.npz"):
            if old.name != name:
                old.unlink()

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays saved with the last state, by the names they were saved under."""
        name = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))["arrays"]
        with np.load(self.folder / name) as saved:
            return {key: saved[key] for key in saved.files}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def checkpoint_folder(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


def check_resumable(output: Path, resume: bool, overwrite: bool) -> None:
    """Before any work: ``--resume`` needs a checkpoint, and a fresh run must not silently drop one."""
    folder = checkpoint_folder(output)
    if resume and not (folder / STATE_FILE).is_file():
        raise CheckpointError(f"--resume: nothing to resume for --output {output} (no checkpoint at {folder}).")
    if not resume and folder.exists():
        if not overwrite:
            raise CheckpointError(
                f"{folder} holds an interrupted run of --output {output}: pass --resume to continue it, "
                "or --overwrite to start over."
            )
        shutil.rmtree(folder)


def open_checkpoint(output: Path, run: dict[str, Any]) -> Checkpoint:
    """The run's checkpoint; an existing one must have been made with the same ``run`` record."""
    checkpoint = Checkpoint(checkpoint_folder(output), run)
    state = checkpoint.folder / STATE_FILE
    if state.is_file():
        saved = json.loads(state.read_text(encoding="utf-8"))["run"]
        differences = [f"{key} {saved.get(key)!r} there, {value!r} now" for key, value in run.items()
                       if saved.get(key) != value]
        if differences:
            raise CheckpointError(
                f"--resume: the checkpoint at {checkpoint.folder} is of a run with other options or data "
                f"({'; '.join(differences)}); resume with the same options, or start over with --overwrite."
            )
    return checkpoint

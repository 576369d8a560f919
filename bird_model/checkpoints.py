"""Checkpoints of an unfinished training run, so that ``train.py --resume`` continues it.

A notebook that disconnects or a preemptible machine that is taken back should not cost the
epochs already trained. At each epoch end the run writes, beside its output folder
(``OUTPUT.checkpoint/``), the classifier's weights, the optimizer's state (moments, step,
learning rate), which phase and epoch it reached and the history so far; at the end of a
phase, the phase's best weights. The folder goes once the model folder is complete.

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

SUFFIX = ".checkpoint"
STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.npz"
OPTIMIZER_FILE = "optimizer.npz"

Histories = dict[str, dict[str, list[float]]]


class CheckpointError(ValueError):
    """Nothing to resume, a checkpoint of other options, or one in the way; the message says what to do."""


@dataclass(frozen=True)
class Progress:
    """How far a run got: ``epochs_done`` epochs of ``phase``, and every finished epoch's metrics.

    ``phase`` is ``phase1``, ``phase2`` or ``done`` (trained, the model folder still to write).
    """

    phase: str = "phase1"
    epochs_done: int = 0
    histories: Histories = field(default_factory=dict)

    def describe(self) -> str:
        if self.phase == "done":
            return "training finished; writing the model folder"
        return f"phase {self.phase[-1]} at epoch {self.epochs_done + 1}"


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
        saved = json.loads(state.read_text(encoding="utf-8"))
        return Progress(phase=saved["phase"], epochs_done=saved["epochs_done"], histories=saved["histories"])

    def save(
        self, progress: Progress, weights: list[np.ndarray], optimizer_state: dict[str, np.ndarray] | None
    ) -> None:
        """Write weights and optimizer state first, the state file last.

        Each file is written aside and renamed over the old one; a run killed between two
        renames can pair new weights with the previous epoch's state, which resumes one
        epoch early at worst.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_arrays(WEIGHTS_FILE, {str(index): array for index, array in enumerate(weights)})
        (self.folder / OPTIMIZER_FILE).unlink(missing_ok=True)
        if optimizer_state is not None:
            self._write_arrays(OPTIMIZER_FILE, optimizer_state)
        state = {"run": self.run, "phase": progress.phase, "epochs_done": progress.epochs_done,
                 "histories": progress.histories}
        (self.folder / f"next.{STATE_FILE}").write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(self.folder / f"next.{STATE_FILE}", self.folder / STATE_FILE)

    def weights(self) -> list[np.ndarray]:
        """The classifier's weights, in ``keras.Model.get_weights`` order."""
        saved = self._read_arrays(WEIGHTS_FILE)
        return [saved[str(index)] for index in range(len(saved))]

    def optimizer_state(self) -> dict[str, np.ndarray] | None:
        """The saved phase's optimizer variables (Keras ``save_own_variables`` keys), if it was mid-phase."""
        return self._read_arrays(OPTIMIZER_FILE) if (self.folder / OPTIMIZER_FILE).is_file() else None

    def _write_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        with (self.folder / f"next.{name}").open("wb") as file:
            np.savez(file, **arrays)
        os.replace(self.folder / f"next.{name}", self.folder / name)

    def _read_arrays(self, name: str) -> dict[str, np.ndarray]:
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

"""train.py on two replicas (MirroredStrategy on a split CPU), killed in phase 2 and resumed: it ends
exactly where the uninterrupted run does, in a complete servable folder."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import h5py
import numpy as np

from bird_model.artifacts import KERAS_CONFIG_FILE, KERAS_WEIGHTS_FILE, read_model_folder
from bird_model.checkpoints import STATE_FILE, checkpoint_folder
from bird_model.devices import SPLIT_CPU_ENV
from bird_model.inference import Classifier
from tests.conftest import LEARNING_BACKBONE, run_script, start_train_py

TWO_REPLICAS = {SPLIT_CPU_ENV: "2"}


def saved_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every array of the folder's Keras weights file, by its path in the file."""
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(folder / KERAS_WEIGHTS_FILE) as weights:
        weights.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


LEARNING = ("--base-weights", LEARNING_BACKBONE, "--epochs", "2", "--fine-tune-epochs", "3", "--image-size", "32",
            "--seed", "7", "--no-quantize")
"""Phase 2 long enough to be killed in; float32 served (the 8-bit conversions come after training)."""


def test_a_run_killed_in_phase_2_resumes_to_the_uninterrupted_model(tiny_dataset: Path, tmp_path: Path) -> None:
    """Also one seed, one model: the resumed run is a second run with the seed, compared array for array."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = start_train_py("--data", tiny_dataset, "--output", whole, *LEARNING, env=TWO_REPLICAS)
    try:
        process = start_train_py("--data", tiny_dataset, "--output", killed, *LEARNING, env=TWO_REPLICAS)
        state = checkpoint_folder(killed) / STATE_FILE
        try:
            deadline = time.monotonic() + 600
            while not (state.is_file() and json.loads(state.read_text())["phase"] == "phase2"
                       and json.loads(state.read_text())["epochs_done"] >= 1):
                assert process.poll() is None, f"train.py ended before a phase-2 checkpoint:\n{process.communicate()}"
                assert time.monotonic() < deadline, "no phase-2 checkpoint after 10 minutes"
                time.sleep(0.01)
            process.kill()  # SIGKILL: nothing of the run gets to save anything more
        finally:
            process.kill()
            process.communicate()
        saved = json.loads(state.read_text())
        assert saved["phase"] == "phase2" and not killed.exists(), "the run finished before it was killed"

        command = ("--data", tiny_dataset, "--output", killed, *LEARNING, "--resume")
        other = run_script("train.py", *command, "--batch-size", "8", env=TWO_REPLICAS)
        assert other.returncode == 2 and "Traceback" not in other.stderr
        assert "other options" in other.stderr and "batch_size 16 there, 8 now" in other.stderr

        resumed = run_script("train.py", *command, env=TWO_REPLICAS)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "Devices: MirroredStrategy, 2 replica(s), precision float32" in resumed.stdout
        assert f"Resuming from {checkpoint_folder(killed)}: phase 2 at epoch {saved['epochs_done'] + 1}" in resumed.stdout
        kept = re.search(r"^Phase 2 (stopped at epoch \d+|ran its \d+ epoch\(s\)), kept epoch (\d+)$", resumed.stdout, re.M)
        assert kept, resumed.stdout
        whole_output = uninterrupted.communicate(timeout=600)
        assert uninterrupted.returncode == 0, whole_output
    finally:
        uninterrupted.kill()  # only if the test failed before it ended

    assert not checkpoint_folder(killed).exists(), "checkpoint left behind"
    again = run_script("train.py", *command)
    assert again.returncode == 2 and "nothing to resume" in again.stderr and "Traceback" not in again.stderr
    assert "float16" not in (killed / KERAS_CONFIG_FILE).read_text(), "the saved Keras model is float32"
    prediction = Classifier(read_model_folder(killed)).classify(next(tiny_dataset.glob("red bird/*.png")))
    assert set(prediction.scores) == {"red bird", "blue bird"}

    assert json.loads((killed / "history.json").read_text())["phase2"]["kept_epoch"] == int(kept.group(2))
    for name in ("metrics.json", "history.json"):
        assert trained_part(killed / name) == trained_part(whole / name), name
    expected, got = saved_weights(whole), saved_weights(killed)
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def trained_part(path: Path) -> dict:
    """A run's record without what the export measures by timing (each conversion's p50)."""
    document = json.loads(path.read_text())
    return {key: value for key, value in document.items() if key != "serving_variants"}

"""train.py killed and resumed: on two replicas (MirroredStrategy on a split CPU) it completes a servable
folder; with one seed it ends exactly where the uninterrupted run does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from bird_model.artifacts import read_model_folder
from bird_model.checkpoints import STATE_FILE, checkpoint_folder
from bird_model.devices import SPLIT_CPU_ENV
from bird_model.inference import Classifier
from tests.conftest import PROXY_WEIGHTS, QUIET_ENV, ROOT, run_script, start_train_py

OPTIONS = ("--base-weights", "none", "--epochs", "3", "--fine-tune-epochs", "2", "--image-size", "32")
TWO_REPLICAS = {SPLIT_CPU_ENV: "2"}


def saved_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every array of the folder's ``model.keras``, by its path in the weights file."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(folder / "model.keras") as saved, saved.open("model.weights.h5") as file, \
            h5py.File(file) as weights:
        weights.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


LEARNING = ("--base-weights", PROXY_WEIGHTS, "--epochs", "3", "--fine-tune-epochs", "4", "--image-size", "32",
            "--seed", "7")
"""A backbone that learns (the random one's loss stays at log 2), and phase 2 long enough to be killed in."""


@pytest.mark.skipif(not PROXY_WEIGHTS.is_file(), reason=f"stand-in backbone weights not found at {PROXY_WEIGHTS}")
def test_a_run_killed_in_phase_2_resumes_to_the_uninterrupted_model(tiny_dataset: Path, tmp_path: Path) -> None:
    """Also one seed, one model: the resumed run is a second run with the seed, compared array for array."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = start_train_py("--data", tiny_dataset, "--output", whole, *LEARNING)
    try:
        process = start_train_py("--data", tiny_dataset, "--output", killed, *LEARNING)
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

        resumed = run_script("train.py", "--data", tiny_dataset, "--output", killed, *LEARNING, "--resume")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"Resuming from {checkpoint_folder(killed)}: phase 2 at epoch {saved['epochs_done'] + 1}" in resumed.stdout
        whole_output = uninterrupted.communicate(timeout=600)
        assert uninterrupted.returncode == 0, whole_output
    finally:
        uninterrupted.kill()  # only if the test failed before it ended

    for name in ("metrics.json", "history.json"):
        assert json.loads((killed / name).read_text()) == json.loads((whole / name).read_text()), name
    expected, got = saved_weights(whole), saved_weights(killed)
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_a_killed_two_replica_run_resumes_to_a_complete_servable_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    command = ["--data", tiny_dataset, "--output", output, *OPTIONS]
    state = checkpoint_folder(output) / STATE_FILE
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *map(str, command)], cwd=ROOT,
        env={**os.environ, **QUIET_ENV, **TWO_REPLICAS}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not state.is_file():
            assert process.poll() is None, f"train.py ended before its first checkpoint:\n{process.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.05)
    finally:
        process.kill()
        first_output = process.communicate()[0]
    assert "Devices: MirroredStrategy, 2 replica(s), precision float32" in first_output
    assert not output.exists(), "the run finished before it was killed"
    saved = json.loads(state.read_text())
    phase, epoch = saved["phase"], saved["epochs_done"] + 1

    other = run_script("train.py", *command, "--resume", "--batch-size", "8", env=TWO_REPLICAS)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "other options" in other.stderr and "batch_size 16 there, 8 now" in other.stderr

    resumed = run_script("train.py", *command, "--resume", env=TWO_REPLICAS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"phase {phase[-1]} at epoch {epoch}" in resumed.stdout or phase == "done", resumed.stdout
    assert "Resuming from" in resumed.stdout and "MirroredStrategy, 2 replica(s)" in resumed.stdout
    folder = read_model_folder(output)
    history = json.loads((output / "history.json").read_text())
    assert len(history["phase1"]["loss"]) >= 1 and len(history["phase2"]["loss"]) >= 1
    assert not checkpoint_folder(output).exists(), "checkpoint left behind"
    with zipfile.ZipFile(output / "model.keras") as saved_model:
        assert "float16" not in saved_model.read("config.json").decode()
    prediction = Classifier(folder).classify(next(tiny_dataset.glob("red bird/*.png")))
    assert set(prediction.scores) == {"red bird", "blue bird"}

    again = run_script("train.py", *command, "--resume")
    assert again.returncode == 2 and "nothing to resume" in again.stderr and "Traceback" not in again.stderr

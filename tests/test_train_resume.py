"""train.py on two replicas (MirroredStrategy on a split CPU), killed after an epoch and resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bird_model.artifacts import read_model_folder
from bird_model.checkpoints import STATE_FILE, checkpoint_folder
from bird_model.devices import SPLIT_CPU_ENV
from bird_model.inference import Classifier
from tests.conftest import QUIET_ENV, ROOT, run_script

OPTIONS = ("--base-weights", "none", "--epochs", "3", "--fine-tune-epochs", "2", "--image-size", "32")
TWO_REPLICAS = {SPLIT_CPU_ENV: "2"}


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
    assert "float16" not in (output / "config.json").read_text(), "the saved Keras model is float32"
    prediction = Classifier(folder).classify(next(tiny_dataset.glob("red bird/*.png")))
    assert set(prediction.scores) == {"red bird", "blue bird"}

    again = run_script("train.py", *command, "--resume")
    assert again.returncode == 2 and "nothing to resume" in again.stderr and "Traceback" not in again.stderr

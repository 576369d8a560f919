"""Two train.py workers on one host train one model (MultiWorkerMirroredStrategy over TF_CONFIG, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import LEARNING_BACKBONE, QUIET_ENV, ROOT, free_port, make_dataset, run_script, start_train_py

COLOURS = {"red bird": (200, 40, 40), "blue bird": (40, 40, 200), "green bird": (40, 180, 40)}
OPTIONS = ("--base-weights", LEARNING_BACKBONE, "--epochs", "5", "--fine-tune-epochs", "1", "--image-size", "32",
           "--no-quantize")  # the 8-bit conversions are the chief's alone and tested elsewhere
PER_REPLICA_BATCH = 16
"""Each of two workers takes 16 photos a step: the global batch, 32, holds all 24 training photos, as
the one-process run's does with --batch-size 32. Each epoch is then one step on the same photos in
both runs, and they differ only in the dropout and augmentation draws (per replica) and in the order
of float sums."""
ACCURACY_MARGIN = 0.17
"""One of the six validation photos."""


def tf_config(ports: list[int], index: int) -> str:
    """What a user sets on each machine: every worker's address, and this one's index."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def test_two_workers_train_one_model_as_good_as_one_process(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "birds", COLOURS, per_class=10)
    ports = [free_port(), free_port()]
    outputs = [tmp_path / "worker0", tmp_path / "worker1"]
    # The one-process run beside the workers: no TF_CONFIG, the workers' global batch, the same split.
    processes = [start_train_py("--data", data, "--output", output, *OPTIONS, "--batch-size", PER_REPLICA_BATCH,
                          env={"TF_CONFIG": tf_config(ports, index)}) for index, output in enumerate(outputs)]
    processes.append(start_train_py("--data", data, "--output", tmp_path / "alone", *OPTIONS,
                              "--batch-size", 2 * PER_REPLICA_BATCH, env={}))
    try:
        results = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, f"{stdout}\n{stderr}"
    chief, other = results[0][0], results[1][0]
    assert "MultiWorkerMirroredStrategy, 2 replica(s)" in chief and "worker 0 of 2 (chief" in chief
    assert "worker 1 of 2" in other and "worker 0 writes the model folder" in other
    assert "Model folder:" not in other and "Traceback" not in results[1][1]

    assert outputs[0].is_dir() and not outputs[1].exists(), "exactly one model folder, the chief's"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alone", "birds", "worker0"], "nothing else written"
    graded = subprocess.run([sys.executable, "-m", "bird_model.evaluate", "--model", outputs[0], "--data", data],
                            cwd=ROOT, env={**os.environ, **QUIET_ENV}, capture_output=True, text=True, timeout=300)
    assert graded.returncode == 0, graded.stderr

    together, alone = (json.loads((folder / "metrics.json").read_text()) for folder in (outputs[0], tmp_path / "alone"))
    assert json.loads((outputs[0] / "split.json").read_text()) == json.loads((tmp_path / "alone" / "split.json").read_text())
    assert together["validation"]["count"] == alone["validation"]["count"] == 6
    assert abs(together["validation"]["accuracy"] - alone["validation"]["accuracy"]) <= ACCURACY_MARGIN


def test_resume_is_refused_under_tf_config_in_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tf_config([free_port(), free_port()], 1)
    result = run_script("train.py", "--data", tiny_dataset, "--output", tmp_path / "run", "--resume",
                        env={"TF_CONFIG": config})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--resume does not work under TF_CONFIG" in result.stderr and len(result.stderr.strip().splitlines()) == 1

"""A fresh clone's first run: train.py with defaults, app.py with no settings, Hub datasets."""

from __future__ import annotations

import json
from pathlib import Path

from gradio_client import Client, handle_file

from tests.conftest import TINY_COLOURS, TRAIN_TINY, hub_env, make_dataset, run_script, serving
from tests.fakehub import FakeHub


def test_two_default_runs_share_the_photo_cache_and_the_app_serves_the_latest(tiny_dataset: Path, tmp_path: Path) -> None:
    """train.py and app.py with no settings but the photos, twice, as a newcomer goes.

    The second run reads its photos from the first run's cache, except one whose entry was
    damaged, and moves runs/latest; app.py, with nothing set, serves the folder it points to.
    """
    cache = ("--cache-dir", tmp_path / "cache")
    first = run_script("train.py", "--data", tiny_dataset, *TRAIN_TINY, *cache, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "(0 photos from the cache in " in first.stdout
    assert "runs/latest now points to" in first.stdout and "python app.py" in first.stdout
    entries = sorted(path for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert len(entries) == 12
    entries[0].write_bytes(entries[0].read_bytes()[:-1])

    second = run_script("train.py", "--data", tiny_dataset, *TRAIN_TINY, *cache, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "(11 photos from the cache in " in second.stdout
    assert sorted(path for path in (tmp_path / "cache").rglob("*") if path.is_file()) == entries
    assert entries[0].stat().st_size == entries[1].stat().st_size, "the damaged entry was written again"
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink())
    assert len(runs) == 2
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink() and latest.resolve() == runs[-1].resolve()
    served = json.loads((latest / "metrics.json").read_text())["serving_variants"]
    assert [(v["name"], v["served"]) for v in served] == [("float32", True)], "--no-quantize: float32, no 8-bit"
    assert sorted(p.name for p in latest.glob("*.tflite")) == ["model.tflite"], "a served float32 is written once"

    with serving({"BIRD_MODEL": ""}, cwd=tmp_path) as app:
        assert "Serving local folder runs/latest" in app.log()
        photo = next((latest / "examples").iterdir())
        _, details = Client(app.url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
        assert details["label"] in json.loads((latest / "run_config.json").read_text())["classes"]


def test_app_without_any_model_says_both_ways_forward(tmp_path: Path) -> None:
    result = run_script("app.py", env={"BIRD_MODEL": ""}, cwd=tmp_path)
    assert result.returncode == 2
    assert "python train.py" in result.stderr and "BIRD_MODEL=OWNER/NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_dataset_is_the_original_kaggle_one(tmp_path: Path) -> None:
    """Without network (as here) the default source fails with advice, not a traceback."""
    result = run_script(
        "train.py", *TRAIN_TINY, env={"KAGGLEHUB_CACHE": str(tmp_path / "kaggle"), "HTTPS_PROXY": "http://127.0.0.1:9"},
        cwd=tmp_path,
    )
    assert "training on the original birds dataset, kaggle:muhammadadeelkaggle/birds-dataset" in result.stdout
    assert result.returncode == 2
    assert "Kaggle" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_training_on_a_hub_dataset_records_its_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    download = tmp_path / "repo"
    make_dataset(download / "Birds dataset", TINY_COLOURS)
    commit = fake_hub.seed_repo("tester/bird-photos", download, repo_type="dataset", tag="v1")

    result = run_script("train.py", "--data", "hf:tester/bird-photos@v1", "--output", tmp_path / "run", *TRAIN_TINY,
                        env=hub_env(fake_hub, tmp_path / "home"))

    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    source = config["dataset"]["sources"][0]
    assert source["spec"] == "hf:tester/bird-photos@v1"
    assert source["commit"] == commit and source["subfolder"] == "Birds dataset"
    assert commit[:12] in (tmp_path / "run" / "README.md").read_text()

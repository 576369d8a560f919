"""A fresh clone's first run: train.py with defaults, app.py with no settings, Hub datasets."""

from __future__ import annotations

import json
from pathlib import Path

from gradio_client import Client, handle_file

from tests.conftest import hub_env, make_dataset, run_script, serving
from tests.fakehub import FakeHub

FAST = ("--base-weights", "none", "--epochs", "1", "--fine-tune-epochs", "0", "--image-size", "32")


def test_train_then_serve_with_no_other_settings(parrot_subset: Path, tmp_path: Path) -> None:
    trained = run_script("train.py", "--data", parrot_subset, *FAST, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink() and (latest / "model.keras").is_file()
    assert "runs/latest now points to" in trained.stdout and "python app.py" in trained.stdout

    with serving({"BIRD_MODEL": ""}, cwd=tmp_path) as app:
        assert "Serving local folder runs/latest" in app.log()
        photo = next((latest / "examples").iterdir())
        _, details = Client(app.url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
        assert details["label"] in json.loads((latest / "config.json").read_text())["classes"]


def test_second_default_run_moves_latest_and_reads_the_photo_cache(tiny_dataset: Path, tmp_path: Path) -> None:
    """The second run reads its photos from the first run's cache, except one whose entry was damaged."""
    cache = ("--cache-dir", tmp_path / "cache")
    first = run_script("train.py", "--data", tiny_dataset, *FAST, *cache, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "(0 photos from the cache in " in first.stdout
    entries = sorted(path for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert len(entries) == 12
    entries[0].write_bytes(entries[0].read_bytes()[:-1])
    second = run_script("train.py", "--data", tiny_dataset, *FAST, *cache, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "(11 photos from the cache in " in second.stdout
    assert sorted(path for path in (tmp_path / "cache").rglob("*") if path.is_file()) == entries
    assert entries[0].stat().st_size == entries[1].stat().st_size, "the damaged entry was written again"
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink())
    assert len(runs) == 2
    assert (tmp_path / "runs" / "latest").resolve() == runs[-1].resolve()


def test_app_without_any_model_says_both_ways_forward(tmp_path: Path) -> None:
    result = run_script("app.py", env={"BIRD_MODEL": ""}, cwd=tmp_path)
    assert result.returncode == 2
    assert "python train.py" in result.stderr and "BIRD_MODEL=OWNER/NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_dataset_is_the_original_kaggle_one(tmp_path: Path) -> None:
    """Without network (as here) the default source fails with advice, not a traceback."""
    result = run_script(
        "train.py", *FAST, env={"KAGGLEHUB_CACHE": str(tmp_path / "kaggle"), "HTTPS_PROXY": "http://127.0.0.1:9"},
        cwd=tmp_path,
    )
    assert "training on the original birds dataset, kaggle:muhammadadeelkaggle/birds-dataset" in result.stdout
    assert result.returncode == 2
    assert "Kaggle" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_training_on_a_hub_dataset_records_its_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    download = tmp_path / "repo"
    make_dataset(download / "Birds dataset", {"red bird": (200, 40, 40), "blue bird": (40, 40, 200)})
    commit = fake_hub.seed_repo("tester/bird-photos", download, repo_type="dataset", tag="v1")

    result = run_script("train.py", "--data", "hf:tester/bird-photos@v1", "--output", tmp_path / "run", *FAST,
                        env=hub_env(fake_hub, tmp_path / "home"))

    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    source = config["dataset"]["sources"][0]
    assert source["spec"] == "hf:tester/bird-photos@v1"
    assert source["commit"] == commit and source["subfolder"] == "Birds dataset"
    assert commit[:12] in (tmp_path / "run" / "README.md").read_text()

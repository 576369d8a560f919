"""Publishing with train.py and serving pinned revisions with app.py, against the stand-in Hub."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

import train
from bird_model.artifacts import read_model_folder
from bird_model.hub import HubError, fetch_model
from bird_model.inference import Classifier
from tests.conftest import (PARROTS, PROXY_WEIGHTS, QUIET_ENV, ROOT, TINY_COLOURS, TRAIN_TINY, hub_env, make_dataset,
                            point_hub_at, run_script, serving)
from tests.fakehub import FakeHub

REPO = "tester/birds"


@pytest.fixture(scope="module")
def model_folder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny model, copied: publishing from it writes its repo id into the folder."""
    return copy_of(tiny_model, tmp_path_factory.mktemp("trained") / "run")


def copy_of(folder: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, target))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_tag_retrain_push_and_serve_each_version(fake_hub: FakeHub, tiny_model: Path, tmp_path: Path) -> None:
    """v1 is the session's tiny model pushed as it is; v2 trains and pushes in one command."""
    env = hub_env(fake_hub, tmp_path / "home")
    old = make_dataset(tmp_path / "old", TINY_COLOURS)  # the very photos tiny_model trained on: make_dataset is seeded
    first = run_script("train.py", "--push-only", copy_of(tiny_model, tmp_path / "v1"), "--push-to-hub", REPO,
                       "--tag", "v1", env=env)
    assert first.returncode == 0, first.stderr
    v1 = fake_hub.tags(REPO)["v1"]
    assert f"Published {REPO} commit {v1} (tag v1)" in first.stdout

    new = make_dataset(tmp_path / "new", {"green bird": (40, 200, 40)}, start_seed=77)
    # Untrained tiny models score by chance, so v2 may grade below v1: --force moves main regardless
    # (the refusal itself is tested in test_a_worse_model_is_published_under_its_tag_only_unless_forced).
    second = run_script("train.py", "--data", old, "--data", new, "--output", tmp_path / "v2", *TRAIN_TINY,
                        "--push-to-hub", REPO, "--force", env=env)
    assert second.returncode == 0, second.stderr
    v2 = fake_hub.commits(REPO)[-1].sha
    assert fake_hub.tags(REPO) == {"v1": v1} and v2 != v1

    files = fake_hub.files(REPO, revision=v2)
    config = json.loads(files["run_config.json"])
    assert config["parent"]["commit"] == v1 and config["repo_id"] == REPO
    v1_validation = {row["sha256"] for row in json.loads(fake_hub.files(REPO, revision=v1)["split.json"])["validation"]}
    v2_validation = {row["sha256"] for row in json.loads(files["split.json"])["validation"]}
    assert v1_validation <= v2_validation, "the photos that graded v1 must grade v2 too"
    comparison = json.loads(files["metrics.json"])["parent_comparison"]
    assert comparison["parent_commit"] == v1 and comparison["photos"] == comparison["parent_photos"] == 2
    card = files["README.md"].decode()
    assert f"retrains `{REPO}` at revision `{v1}`" in card and "On the 2 of its 2 validation photos" in card
    assert {"config.json", "model.weights.h5", "labels.json", "metrics.json", "examples/green_bird.jpg"} <= set(files)

    for revision, commit, classes in (("v1", v1, ["blue bird", "red bird"]),
                                      ("main", v2, ["blue bird", "green bird", "red bird"])):
        with serving({**env, "BIRD_MODEL": REPO, "BIRD_MODEL_REVISION": revision}) as app:
            assert f"Serving {REPO}@{commit[:7]}" in app.log() and "XNNPACK" not in app.log()
            page = Client(app.url, verbose=False).config
            assert f"{REPO}@{commit[:7]}" in json.dumps(page)
            label, _ = Client(app.url, verbose=False).predict(
                handle_file(str(tmp_path / "v2" / "examples" / "red_bird.jpg")), api_name="/predict"
            )
            assert sorted(c["label"] for c in label["confidences"]) == classes


def test_app_restarts_offline_from_the_cache(fake_hub: FakeHub, model_folder: Path, tmp_path: Path) -> None:
    env = hub_env(fake_hub, tmp_path / "home")
    assert train.main(["--push-only", str(model_folder), "--push-to-hub", REPO, "--token", "hf_write"]) == 0
    with serving({**env, "BIRD_MODEL": REPO}):
        pass
    fake_hub.stop()
    with serving({**env, "BIRD_MODEL": REPO, "HF_HUB_OFFLINE": "1"}) as app:
        assert f"Serving {REPO}@" in app.log()


@pytest.mark.parametrize(
    ("token", "breakage", "message"),
    [
        (None, None, "no Hugging Face token found"),
        ("hf_wrong", None, "token was refused (401)"),
        ("hf_read", None, "may not write to this repo (403)"),
        ("hf_write", "down", "cannot be reached"),
        ("hf_write", 503, "answered HTTP 503 (after retries)"),
    ],
)
def test_failed_upload_keeps_the_folder_and_prints_a_retry_that_works(
    fake_hub: FakeHub, fast_retries: None, model_folder: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    token: str | None, breakage: str | int | None, message: str,
) -> None:
    folder = copy_of(model_folder, tmp_path / "run")
    before = snapshot(folder)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    if breakage == "down":
        point_hub_at(monkeypatch, "http://127.0.0.1:9")
    elif breakage:
        fake_hub.fail_always(breakage, path_prefix="/api/models/")

    code = train.main(["--push-only", str(folder), "--push-to-hub", REPO, "--tag", "v1"])

    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert token is None or token not in err
    assert before == snapshot(folder), "a failed upload changed the model folder"
    retry = err.strip().splitlines()[-1].strip()
    assert retry == f"python train.py --push-only {shlex.quote(str(folder))} --push-to-hub {REPO} --tag v1"

    fake_hub.clear_failures()
    point_hub_at(monkeypatch, fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    assert train.main(shlex.split(retry)[2:]) == 0
    assert "v1" in fake_hub.tags(REPO)


def test_push_only_refuses_an_incomplete_folder(fake_hub: FakeHub, model_folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(model_folder, tmp_path / "run")
    (folder / "labels.json").unlink()
    assert train.main(["--push-only", str(folder), "--push-to-hub", REPO, "--token", "hf_write"]) == 1
    assert "missing labels.json" in capsys.readouterr().err
    assert fake_hub.requests == []


@pytest.mark.parametrize(
    ("source", "revision", "token", "message"),
    [
        ("tester/nothing-here", None, "hf_write", "the repo does not exist, or it is private"),
        (REPO, "v9", "hf_write", "that revision (branch, tag or commit) does not exist"),
        ("tester/private-birds", None, None, "it is private and no valid token was given"),
        ("tester/not-a-model", None, "hf_write", "not a usable model folder: Model folder"),
        ("no/such/thing", None, None, "no/such/thing: the folder does not exist (and it is not a Hub repo id"),
    ],
)
def test_serving_start_up_errors_are_one_clear_line(
    fake_hub: FakeHub, model_folder: Path, tmp_path: Path, source: str, revision: str | None,
    token: str | None, message: str,
) -> None:
    fake_hub.seed_repo(REPO, model_folder)
    fake_hub.seed_repo("tester/private-birds", model_folder, private=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("just notes")
    fake_hub.seed_repo("tester/not-a-model", tmp_path / "notes")
    with pytest.raises(HubError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fetch_model(source, revision, token=token)


def test_serving_with_the_hub_down_and_nothing_cached(hub_client: None, monkeypatch: pytest.MonkeyPatch) -> None:
    point_hub_at(monkeypatch, "http://127.0.0.1:9")
    with pytest.raises(HubError, match="cannot be reached"):
        fetch_model(REPO)


def test_app_reports_hub_errors_without_a_traceback(fake_hub: FakeHub, tmp_path: Path) -> None:
    result = run_script("app.py", env={**hub_env(fake_hub, tmp_path / "home"), "BIRD_MODEL": "tester/missing"})
    assert result.returncode == 2
    assert ("app.py: error: tester/missing: the folder does not exist, and it is not available from the Hub "
            "(downloading tester/missing at revision 'main' failed: the repo does not exist") in result.stderr
    assert "Traceback" not in result.stderr


def test_published_card_renders_with_metadata(fake_hub: FakeHub, model_folder: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    folder = copy_of(model_folder, tmp_path / "run")
    assert train.main(["--push-only", str(folder), "--push-to-hub", REPO, "--token", "hf_write"]) == 0
    card = ModelCard(fake_hub.files(REPO)["README.md"].decode())
    assert card.data.library_name == "keras" and card.data.pipeline_tag == "image-classification"
    assert card.data.eval_results is None, "a local folder is no Hub dataset: no model-index to link"
    assert f'keras.saving.load_model("hf://{REPO}")' in card.text
    assert {"confusion_matrix.png", "training_curves.png"} <= set(fake_hub.files(REPO)), "the card's pictures go up"
    assert read_model_folder(folder).config["repo_id"] == REPO


def test_a_worse_model_is_published_under_its_tag_only_unless_forced(
    fake_hub: FakeHub, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main(["--push-only", str(model_folder), "--push-to-hub", REPO, "--tag", "v1", "--token", "hf_write"]) == 0
    v1 = fake_hub.tags(REPO)["v1"]
    worse = copy_of(model_folder, tmp_path / "worse")
    metrics = json.loads((worse / "metrics.json").read_text())
    metrics["parent_comparison"] = {"parent_commit": v1, "photos": 2, "parent_photos": 2,
                                    "parent_accuracy": 1.0, "new_accuracy": 0.5}
    (worse / "metrics.json").write_text(json.dumps(metrics))
    (worse / "run_config.json").write_text(json.dumps({**read_model_folder(worse).config, "parent": None}))
    capsys.readouterr()

    assert train.main(["--push-only", str(worse), "--push-to-hub", REPO, "--token", "hf_write"]) == 1
    assert "worse than the one on main" in capsys.readouterr().err
    assert fake_hub.commits(REPO)[-1].sha == v1

    assert train.main(["--push-only", str(worse), "--push-to-hub", REPO, "--tag", "v2", "--token", "hf_write"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: this model is worse" in err and "main was NOT moved" in err
    v2 = fake_hub.tags(REPO)["v2"]
    assert v2 != v1 and fake_hub.files(REPO, revision="main") == fake_hub.files(REPO, revision=v1)
    assert json.loads(fake_hub.files(REPO, revision="v2")["metrics.json"])["parent_comparison"]["new_accuracy"] == 0.5

    forced = ["--push-only", str(worse), "--push-to-hub", REPO, "--tag", "v2-forced", "--force", "--token", "hf_write"]
    assert train.main(forced) == 0
    assert fake_hub.files(REPO, revision="main") == fake_hub.files(REPO, revision="v2-forced")


def test_serving_downloads_the_conversion_and_not_the_keras_model(
    fake_hub: FakeHub, model_folder: Path, tmp_path: Path
) -> None:
    fake_hub.seed_repo(REPO, model_folder)
    served = fetch_model(REPO).folder.path
    assert (served / "model.tflite").is_file() and (served / "run_config.json").is_file()
    assert not {"model.weights.h5", "config.json"} & {path.name for path in served.iterdir()}

    keras_only = copy_of(model_folder, tmp_path / "keras-only")
    (keras_only / "model.tflite").unlink()
    fake_hub.seed_repo("tester/keras-only", keras_only)
    served = fetch_model("tester/keras-only").folder.path
    assert (served / "model.weights.h5").is_file() and (served / "config.json").is_file()


def test_nothing_published_names_the_training_machine(
    fake_hub: FakeHub, trained: Path, tmp_path: Path
) -> None:
    """Trained from absolute paths (data, stand-in weights, output), published: no file the Hub
    receives holds a path of this machine."""
    folder = copy_of(trained, tmp_path / "to-publish")
    result = run_script("train.py", "--push-only", folder, "--push-to-hub", REPO, env=hub_env(fake_hub, tmp_path / "h"))
    assert result.returncode == 0, result.stderr
    published = fake_hub.files(REPO)
    assert {"run_config.json", "split.json", "dataset_report.json", "config.json", "model.weights.h5",
            "README.md"} <= set(published)
    contents = dict(published)
    machine = {str(PARROTS.resolve()), str(PROXY_WEIGHTS.resolve().parent), str(ROOT), str(Path.home()),
               str(trained.resolve().parent), str(tmp_path), tempfile.gettempdir() + "/"}
    for name, data in contents.items():
        for path in machine:
            assert path.encode() not in data, f"{name} holds {path}"
    config = json.loads(published["run_config.json"])
    assert [source["spec"] for source in config["dataset"]["sources"]] == ["parrots"]
    assert config["base_weights"] == PROXY_WEIGHTS.name
    row = json.loads(published["split.json"])["validation"][0]
    assert row["source"] == 0 and (PARROTS / row["path"]).is_file()


KERAS_HF_SNIPPET = """
import json, sys
import keras
import numpy as np
from bird_model.images import load_rgb
model = keras.saving.load_model(sys.argv[1])
size = int(model.input_shape[1])
print(json.dumps([model.predict(load_rgb(path, size)[None], verbose=0)[0].tolist() for path in sys.argv[2:]]))
"""
"""The Hub's "Use this model" snippet for a ``library_name: keras`` repo, with the card's decoder."""


def keras_from_hub(uri: str, photos: list[Path], env: dict[str, str]) -> list[list[float]]:
    """What ``keras.saving.load_model(uri)`` predicts for each photo, in a process of its own
    (``HF_ENDPOINT`` is read at import, as a user's would be)."""
    result = subprocess.run([sys.executable, "-c", KERAS_HF_SNIPPET, uri, *map(str, photos)], cwd=ROOT,
                            env={**os.environ, **QUIET_ENV, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keras_loads_a_published_repo_by_its_hf_uri_and_answers_like_the_app(
    fake_hub: FakeHub, trained: Path, tmp_path: Path
) -> None:
    """The snippet the Hub shows for the card's ``library_name: keras`` loads the repo as published and
    gives the app's top class for each example photo."""
    env = hub_env(fake_hub, tmp_path / "home")
    folder = copy_of(trained, tmp_path / "to-publish")
    assert run_script("train.py", "--push-only", folder, "--push-to-hub", REPO, env=env).returncode == 0
    photos = read_model_folder(folder).examples()

    probabilities = keras_from_hub(f"hf://{REPO}", photos, env)

    app = Classifier(fetch_model(REPO).folder)
    # The app may serve an 8-bit conversion (bird_model.quantization): the same top class, not the
    # same probabilities; the float32 conversion published beside it matches Keras to 1e-4.
    float32 = Classifier(read_model_folder(folder), read_model_folder(folder).float_litert_path)
    classes = app.classes
    for photo, scores in zip(photos, probabilities, strict=True):
        assert classes[int(np.argmax(scores))] == app.classify(photo).label, photo.name
        exact = float32.classify(photo).scores
        assert np.allclose([exact[name] for name in classes], scores, atol=1e-4)


def test_a_legacy_folder_is_served_and_published_in_keras_layout(
    fake_hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    """A folder from before the Keras layout (the model zipped in model.keras, the run config in
    config.json) is still served; published, it goes up in today's layout, loadable by hf:// URI."""
    legacy = copy_of(tiny_model, tmp_path / "legacy")
    subprocess.run([sys.executable, "-c", "import sys, keras; keras.saving.load_model(sys.argv[1]).save(sys.argv[2])",
                    legacy, legacy / "model.keras"], check=True, cwd=ROOT, env={**os.environ, **QUIET_ENV},
                   capture_output=True, timeout=300)
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        (legacy / name).unlink()
    (legacy / "run_config.json").rename(legacy / "config.json")
    fake_hub.seed_repo("tester/legacy", legacy)

    served = fetch_model("tester/legacy").folder
    assert served.config_file == "config.json" and served.classes == ["blue bird", "red bird"]
    photo = served.examples()[0]
    assert Classifier(served).classify(photo).label in served.classes

    env = hub_env(fake_hub, tmp_path / "home")
    result = run_script("train.py", "--push-only", legacy, "--push-to-hub", REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert "in Keras' layout" in result.stdout
    published = fake_hub.files(REPO)
    assert {"config.json", "model.weights.h5", "metadata.json", "run_config.json"} <= set(published)
    assert "model.keras" not in published and json.loads(published["run_config.json"])["repo_id"] == REPO
    [scores] = keras_from_hub(f"hf://{REPO}", [photo], env)
    exact = Classifier(served, replace(served, path=legacy).float_litert_path).classify(photo).scores  # the app may serve 8 bits
    assert np.allclose(scores, [exact[name] for name in served.classes], atol=1e-4)

"""Going live: ``python -m bird_model.space`` deploys, promotes, rolls back and reports a Space.

The stand-in Hub (tests/fakehub.py) answers the Space routes as the Hub does, and the real
``huggingface_hub`` client reads back what the Space holds.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from huggingface_hub import HfApi, SpaceCard, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from bird_model.artifacts import read_model_folder
from bird_model.space import main
from bird_model.space_files import pinned_version, requirement_name, serving_requirements
from tests.conftest import QUIET_ENV, ROOT, free_port, hub_env
from tests.hub_spec import space_card_problems
from tests.fakehub import FakeHub

SPACE = "tester/birds-demo"
MODEL = "tester/birds"
PACKAGE_FILES = {module.relative_to(ROOT).as_posix() for module in (ROOT / "bird_model").rglob("*.py")}
SERVING_FILES = {"app.py", "README.md", "requirements.txt", *PACKAGE_FILES}
PROMOTED = {"BIRD_MODEL": MODEL, "BIRD_MODEL_REVISION": "v2", "BIRD_MODEL_PREVIOUS_REVISION": "v1"}
ACCURACY = {"v0": 0.8, "v1": 0.9, "v2": 0.95}


def published_folder(root: Path, accuracy: float, litert: bool = True) -> Path:
    """What deploy and promote read of a model revision; not a model anyone could run."""
    root.mkdir(parents=True)
    (root / ("model.tflite" if litert else "model.keras")).write_bytes(b"stand-in model")
    (root / "metrics.json").write_text(json.dumps({"validation": {"accuracy": accuracy}}))
    (root / "labels.json").write_text(json.dumps({"id2label": {"0": "blue bird", "1": "red bird"}}))
    (root / "README.md").write_text("---\nlibrary_name: keras\nlicense: cc-by-4.0\ndatasets:\n- tester/bird-photos\n"
                                     "- not a dataset id\n---\n# birds\n")
    return root


def publish_versions(hub: FakeHub, tmp_path: Path, repo_id: str = MODEL, private: bool = False) -> dict[str, str]:
    """v0 has only model.keras (trained before model.tflite existed); v1 and v2 have both."""
    return {
        tag: hub.seed_repo(repo_id, published_folder(tmp_path / f"{repo_id}-{tag}", ACCURACY[tag], litert=tag != "v0"),
                           private=private, tag=tag)
        for tag in ("v0", "v1", "v2")
    }


@pytest.fixture
def as_owner(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> HfApi:
    """In-process commands with the owner's write token in HF_TOKEN; the returned client reads the Hub back."""
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    monkeypatch.delenv("BIRD_MODEL_TOKEN", raising=False)
    return HfApi(token="hf_write")


def variables(api: HfApi) -> dict[str, str]:
    return {key: variable.value for key, variable in api.get_space_variables(SPACE).items()}


def space_text(api: HfApi, filename: str, tmp_path: Path) -> str:
    return Path(api.hf_hub_download(SPACE, filename, repo_type="space", cache_dir=tmp_path / "read-back")).read_text()


def run_space(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "-m", "bird_model.space", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **QUIET_ENV, **env}, timeout=300)


def test_space_requirements_are_requirements_txt_without_tensorflow_and_keras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = (ROOT / "requirements.txt").read_text()
    served = serving_requirements(full)

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if requirement_name(line)]

    assert pins(served) == [line for line in pins(full) if requirement_name(line) not in {"tensorflow", "keras"}]
    names = {requirement_name(line) for line in pins(served)}
    assert {"gradio", "huggingface-hub", "ai-edge-litert", "numpy", "pillow"} <= names
    assert len(pins(served)) == len(pins(full)) - 2, "requirements.txt no longer pins tensorflow and keras"
    assert main(["requirements"]) == 0
    assert capsys.readouterr().out == served


def test_space_deploy_creates_a_gradio_space_holding_exactly_the_serving_files(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    tags = publish_versions(fake_hub, tmp_path)

    result = run_space("deploy", SPACE, "--model", MODEL, "--revision", "v1", env=hub_env(fake_hub, tmp_path / "home"))

    assert result.returncode == 0, result.stderr
    api = HfApi(token="hf_write")
    assert set(api.list_repo_files(SPACE, repo_type="space")) == SERVING_FILES
    assert api.space_info(SPACE).sdk == "gradio"
    creation, deployment = fake_hub.commits(SPACE, repo_type="space")
    assert f"{fake_hub.url}/spaces/{SPACE}\n" in result.stdout and f"Space commit {deployment.sha}" in result.stdout
    assert f"{MODEL} at 'v1' (commit {tags['v1'][:7]}, validation accuracy 90.00%)" in result.stdout

    card = SpaceCard(space_text(api, "README.md", tmp_path)).data
    requirements = (ROOT / "requirements.txt").read_text()
    assert space_card_problems(card.to_dict()) == []
    assert card.models == [MODEL] and card.sdk == "gradio" and card.app_file == "app.py"
    assert card.sdk_version == pinned_version(requirements, "gradio") and card.title
    assert card.license == "cc-by-4.0" and card.datasets == ["tester/bird-photos"] and card.tags
    [preload] = card.to_dict()["preload_from_hub"]
    repo, files, commit = preload.split(" ")
    assert (repo, commit) == (MODEL, tags["v1"])
    assert set(files.split(",")) == {"README.md", "labels.json", "metrics.json", "model.tflite"}
    assert space_text(api, "requirements.txt", tmp_path) == serving_requirements(requirements)
    assert space_text(api, "app.py", tmp_path) == (ROOT / "app.py").read_text()
    assert variables(api) == {"BIRD_MODEL": MODEL, "BIRD_MODEL_REVISION": "v1"}
    assert fake_hub.space_secrets(SPACE) == {}, "a public model needs no token on the Space"
    assert "hf_write" not in result.stdout + result.stderr


def test_space_redeploy_updates_the_same_space_and_keeps_the_promoted_revision(
    fake_hub: FakeHub, as_owner: HfApi, tmp_path: Path
) -> None:
    publish_versions(fake_hub, tmp_path)
    assert main(["deploy", SPACE, "--model", MODEL, "--revision", "v1"]) == 0
    assert main(["promote", SPACE, "--revision", "v2"]) == 0
    as_owner.upload_file(path_or_fileobj=b"left over", path_in_repo="notes/old.txt", repo_id=SPACE, repo_type="space")

    assert main(["deploy", SPACE, "--model", MODEL]) == 0

    assert set(as_owner.list_repo_files(SPACE, repo_type="space")) == SERVING_FILES
    assert len(fake_hub.commits(SPACE, repo_type="space")) == 4  # creation, deploy, stray file, redeploy
    assert variables(as_owner) == PROMOTED


def test_space_promote_rollback_and_status(fake_hub: FakeHub, as_owner: HfApi, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tags = publish_versions(fake_hub, tmp_path)
    assert main(["deploy", SPACE, "--model", MODEL, "--revision", "v1"]) == 0
    assert main(["status", SPACE]) == 0
    out = capsys.readouterr().out
    assert "stage: RUNNING (hardware cpu-basic)" in out
    assert f"serves: {MODEL} at 'v1' (commit {tags['v1'][:7]}, validation accuracy 90.00%)" in out
    assert "previous:" not in out

    assert main(["promote", SPACE, "--revision", "v2"]) == 0
    out = capsys.readouterr().out
    assert f"now serves {MODEL} at 'v2' (commit {tags['v2'][:7]}, validation accuracy 95.00%)" in out
    assert "it served 'v1' before" in out
    assert f"Roll back with: python -m bird_model.space rollback {SPACE}" in out
    assert variables(as_owner) == PROMOTED
    assert main(["status", SPACE]) == 0
    out = capsys.readouterr().out
    assert "validation accuracy 95.00%" in out and "previous: 'v1'" in out

    assert main(["rollback", SPACE]) == 0
    assert "now serves tester/birds at 'v1'" in capsys.readouterr().out
    assert variables(as_owner)["BIRD_MODEL_REVISION"] == "v1"
    assert variables(as_owner)["BIRD_MODEL_PREVIOUS_REVISION"] == "v2"
    assert main(["rollback", SPACE]) == 0, "a second rollback returns to the revision the first one left"
    assert variables(as_owner)["BIRD_MODEL_REVISION"] == "v2"

    assert main(["promote", SPACE, "--revision", "v2"]) == 0
    assert "already serves" in capsys.readouterr().out
    assert variables(as_owner)["BIRD_MODEL_PREVIOUS_REVISION"] == "v1"
    fake_hub.set_space_stage(SPACE, "BUILDING")
    assert main(["status", SPACE]) == 0
    assert "stage: BUILDING\n" in capsys.readouterr().out


def test_space_promote_refuses_a_revision_it_cannot_serve(fake_hub: FakeHub, as_owner: HfApi, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    publish_versions(fake_hub, tmp_path)
    assert main(["deploy", SPACE, "--model", MODEL, "--revision", "v1"]) == 0
    assert main(["rollback", SPACE]) == 2
    assert "no earlier revision to roll back to" in capsys.readouterr().err
    before = variables(as_owner)

    assert main(["promote", SPACE, "--revision", "v9"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "that revision (branch, tag or commit) does not exist" in lines[0]
    assert lines[1].strip() == f"python -m bird_model.space promote {SPACE} --revision v9"

    assert main(["promote", SPACE, "--revision", "v0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "has no model.tflite" in lines[0]
    assert f"BIRD_MODEL={MODEL} BIRD_MODEL_REVISION=v0 python app.py" in lines[0]
    assert variables(as_owner) == before


@pytest.mark.parametrize(
    ("token", "model", "message"),
    [
        ("hf_wrong", MODEL, "the token was refused (401)"),
        ("hf_read", MODEL, "the token may not write to this repo (403)"),
        (None, MODEL, "no Hugging Face token found"),
        ("hf_write", "tester/unpublished", "reading tester/unpublished at revision 'v1' failed: the repo does not exist"),
    ],
)
def test_space_deploy_failure_is_one_line_and_a_retry_that_works(
    fake_hub: FakeHub, hub_client: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], token: str | None, model: str, message: str,
) -> None:
    publish_versions(fake_hub, tmp_path)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)

    code = main(["deploy", SPACE, "--model", model, "--revision", "v1"])

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1 and captured.out == ""
    assert len(lines) == 2 and message in lines[0], captured.err
    assert token is None or token not in captured.err
    retry = lines[1].strip()
    assert retry == f"python -m bird_model.space deploy {SPACE} --model {model} --revision v1"
    assert not HfApi(token="hf_write").repo_exists(SPACE, repo_type="space"), "a failed deploy created the Space"

    if model != MODEL:  # publish it, then the same command goes through
        fake_hub.seed_repo(model, published_folder(tmp_path / "late", 0.9), tag="v1")
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    assert main(shlex.split(retry)[3:]) == 0
    assert variables(HfApi()) == {"BIRD_MODEL": model, "BIRD_MODEL_REVISION": "v1"}


def test_space_private_model_needs_an_explicit_read_token(fake_hub: FakeHub, as_owner: HfApi, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    publish_versions(fake_hub, tmp_path, private=True)

    assert main(["deploy", SPACE, "--model", MODEL]) == 2
    assert "needs a read token" in capsys.readouterr().err
    assert main(["deploy", SPACE, "--model", MODEL, "--model-token", "hf_write"]) == 2
    assert "--model-token is a write token" in capsys.readouterr().err
    assert not as_owner.repo_exists(SPACE, repo_type="space"), "a refused deploy changed the Hub"

    assert main(["deploy", SPACE, "--model", MODEL, "--model-token", "hf_read"]) == 0
    assert "hf_read" not in capsys.readouterr().out
    assert fake_hub.space_secrets(SPACE) == {"HF_TOKEN": "hf_read"}
    assert variables(as_owner) == {"BIRD_MODEL": MODEL, "BIRD_MODEL_REVISION": "main"}
    assert main(["deploy", SPACE, "--model", MODEL, "--revision", "v1"]) == 0, "the Space already holds its read token"
    assert fake_hub.space_secrets(SPACE) == {"HF_TOKEN": "hf_read"}
    card = SpaceCard(space_text(as_owner, "README.md", tmp_path)).data.to_dict()
    assert "preload_from_hub" not in card, "the Hub does not preload private repos"
    assert space_card_problems(card) == []


# -- the deployed files, served the way the Space serves them ----------------------------------------
def without_tensorflow(folder: Path) -> Path:
    """A PYTHONPATH entry under which importing tensorflow or keras fails, as on a Space that lacks them."""
    for name in ("tensorflow", "keras"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    return folder


@contextmanager
def space_app(space: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """The Space's own app.py, started from its files as the Space starts it; yields its URL and log.

    No HF_TOKEN: a Space serving a public model has no such secret.
    """
    port = free_port()
    log = space / "app.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=space, stdout=out, stderr=subprocess.STDOUT,
            env={**space_environment(), **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                 "BIRD_LOG_DIR": str(space / "predictions")},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while not answers(url):
            alive = process.poll() is None and time.monotonic() < deadline
            assert alive, f"the Space's app did not start:\n{log.read_text()}"
            time.sleep(0.5)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def space_environment() -> dict[str, str]:
    return {key: value for key, value in {**os.environ, **QUIET_ENV}.items() if key != "HF_TOKEN"}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_space_files_serve_the_model_without_tensorflow(fake_hub: FakeHub, as_owner: HfApi, tiny_model: Path,
                                                        tmp_path: Path) -> None:
    commit = fake_hub.seed_repo(MODEL, tiny_model, tag="v1")
    assert main(["deploy", SPACE, "--model", MODEL, "--revision", "v1"]) == 0
    space = Path(snapshot_download(SPACE, repo_type="space", local_dir=tmp_path / "space"))
    shutil.rmtree(space / ".cache", ignore_errors=True)
    blocked = {"PYTHONPATH": str(without_tensorflow(tmp_path / "blocked"))}
    hub = {key: value for key, value in hub_env(fake_hub, tmp_path / "home").items() if key != "HF_TOKEN"}
    env = {**hub, **variables(as_owner), **blocked}

    with space_app(space, env) as (url, log):
        assert f"Serving {MODEL}@{commit[:7]}" in log.read_text()
        photo = read_model_folder(tiny_model).examples()[0]
        label, details = Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
    assert sorted(c["label"] for c in label["confidences"]) == ["blue bird", "red bird"]
    assert details["model"] == f"{MODEL}@{commit[:7]}"

    keras_only = Path(shutil.copytree(tiny_model, tmp_path / "keras-only"))
    (keras_only / "model.tflite").unlink()
    result = subprocess.run([sys.executable, "app.py"], cwd=space, capture_output=True, text=True, timeout=120,
                            env={**space_environment(), **blocked, "BIRD_MODEL": str(keras_only)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "has no model.tflite" in result.stderr and "pip install -r requirements.txt" in result.stderr


def test_fakehub_space_routes_match_the_client(fake_hub: FakeHub, as_owner: HfApi) -> None:
    """The Space settings routes, through the client methods that call them."""
    with pytest.raises(ValueError, match="space_sdk"):
        as_owner.create_repo(SPACE, repo_type="space")
    as_owner.create_repo(SPACE, repo_type="space", space_sdk="gradio", space_variables=[{"key": "A", "value": "1"}])
    assert as_owner.get_space_runtime(SPACE).stage == "NO_APP_FILE"
    assert set(as_owner.add_space_variable(SPACE, "B", "2", description="two")) == {"A", "B"}
    assert as_owner.get_space_variables(SPACE)["B"].description == "two"
    assert set(as_owner.delete_space_variable(SPACE, "A")) == {"B"}
    as_owner.add_space_secret(SPACE, "S", "hidden")
    secrets = as_owner.get_space_secrets(SPACE)
    assert set(secrets) == {"S"} and "hidden" not in json.dumps(secrets, default=str)
    as_owner.delete_space_secret(SPACE, "S")
    assert fake_hub.space_secrets(SPACE) == {}
    with pytest.raises(HfHubHTTPError) as refused:
        HfApi(token="hf_read").get_space_variables(SPACE)
    assert refused.value.response.status_code == 403
    runtime = HfApi(token=False).get_space_runtime(SPACE)
    assert runtime.stage == "NO_APP_FILE" and runtime.requested_hardware == "cpu-basic"

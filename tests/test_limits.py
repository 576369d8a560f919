"""What a stranger cannot make the demo do: skip the queue, fill the disk through uploads, or
file a correction for an answer nobody saw. The app runs in-process (``app.build``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app as app_module
from bird_model.artifacts import read_model_folder
from bird_model.web.feedback import NO_ANSWER
from bird_model.web.uploads import FULL
from tests.conftest import app_in_process, solid_photo


@pytest.fixture(scope="module")
def url(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("limits-log")
    with app_in_process({"BIRD_LOG_DIR": str(log)}, "--model", str(tiny_model)) as running:
        yield running


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_only_the_queue_answers(url: str, tiny_model: Path) -> None:
    """Gradio's REST routes skip the queue (its slots and its size limit): they are closed, and
    every event of the page that runs on the server, feedback included, is a queued one."""
    photo = read_model_folder(tiny_model).examples()[0]
    for endpoint in ("predict", "feedback", "explain"):
        status, text = post(f"{url}gradio_api/run/{endpoint}", json.dumps({"data": [None]}).encode())
        assert status >= 400 and "join the queue" in text, (endpoint, status, text)
    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    server_side = [dependency for dependency in config["dependencies"] if dependency["backend_fn"]]
    assert server_side and all(dependency["queue"] for dependency in server_side)
    assert Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")[1]["verdict"] in (
        "known", "unknown")


def test_a_correction_needs_an_answer_first(url: str, tiny_model: Path, tmp_path: Path) -> None:
    folder = read_model_folder(tiny_model)
    client = Client(url, verbose=False)
    photo = solid_photo(tmp_path / "never-answered.png", (90, 160, 30))
    with pytest.raises(AppError, match="send this photo to be classified first"):
        client.predict(handle_file(str(photo)), folder.classes[0], api_name="/feedback")
    client.predict(handle_file(str(photo)), api_name="/predict")
    assert client.predict(handle_file(str(photo)), folder.classes[0], api_name="/feedback") == {
        "class": folder.classes[0]}
    assert NO_ANSWER.startswith("Feedback is about an answer")


def test_one_caller_stores_at_most_its_hourly_share(tiny_model: Path, tmp_path: Path) -> None:
    """25 answered photos reported by one caller with BIRD_FEEDBACK_PER_HOUR=20: 20 kept, 5 refused in one line."""
    classes = read_model_folder(tiny_model).classes
    log = tmp_path / "log"
    with app_in_process({"BIRD_LOG_DIR": str(log), "BIRD_FEEDBACK_PER_HOUR": "20"}, "--model", str(tiny_model)) as running:
        client = Client(running, verbose=False)
        refusals = []
        for index in range(25):
            photo = solid_photo(tmp_path / f"{index}.png", (40, 200, 40), seed=index)
            client.predict(handle_file(str(photo)), api_name="/predict")
            try:
                client.predict(handle_file(str(photo)), classes[index % 2], api_name="/feedback")
            except AppError as error:
                refusals.append(str(error))
    stored = [path for path in (log / "feedback" / "pending").rglob("*") if path.is_file()]
    assert len(stored) == 20 and len(refusals) == 5, refusals
    assert all("\n" not in refusal and "20" in refusal for refusal in refusals), refusals


def upload(url: str, path: Path) -> tuple[int, str]:
    boundary = "birdboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return post(url + "gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize("min_age", [0, 3600])
def test_uploads_stay_within_the_cache_budget(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              min_age: int) -> None:
    """Twelve 1 MB uploads against a 4 MB budget: the oldest go when they may (min_age 0), or
    the upload is refused in one line while every cached one is still needed (min_age 3600)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    monkeypatch.setattr(app_module, "UPLOAD_CACHE_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(app_module, "UPLOAD_MIN_AGE", min_age)
    blob = tmp_path / "blob.bin"
    answers = []
    with app_in_process({"BIRD_LOG_DIR": str(tmp_path / "log")}, "--model", str(tiny_model)) as running:
        for index in range(12):
            blob.write_bytes(index.to_bytes(4, "big") * (256 * 1024))  # 1 MB, a different file each time
            answers.append(upload(running, blob))
        cached = [path for path in (tmp_path / "gradio-cache").rglob("*") if path.is_file() and path.name == "blob.bin"]
        total = sum(path.stat().st_size for path in cached)
    assert total <= 4 * 1024 * 1024, total
    statuses = [status for status, _ in answers]
    if min_age == 0:
        assert statuses == [200] * 12 and len(cached) == 3
    else:
        assert statuses[:3] == [200] * 3 and set(statuses[3:]) == {413}, statuses
        assert answers[-1][1] == FULL

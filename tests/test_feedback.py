"""Visitors' corrections: sent through the API, stored as feedback/CLASS/, mirrored, trained on and reported.

The served part runs app.py as a real process with its log mirrored to the stand-in Hub, and
reports through gradio_client as an API user would; what the tiny test model answers for a
photo varies by run, so no test depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from bird_model.artifacts import ModelFolder, read_model_folder
from bird_model.evaluation import Metrics, SplitMetrics
from bird_model.feedback import NONE_OF_THESE, FeedbackError, FeedbackStore
from bird_model.feedback.__main__ import main as review
from bird_model.images import load_rgb
from bird_model.inference import Prediction
from bird_model.logfolder import ACCEPTED_DIR, FEEDBACK_DIR, MARKER, NONE_DIR, PENDING_DIR
from bird_model.monitoring import ModelIdentity, build_report, format_report, read_log, read_visitor_reports
from bird_model.monitoring.visitors import VISITOR_ACCURACY_MARGIN, VISITOR_MIN_REPORTS
from bird_model.sources import resolve_source
from tests.conftest import PARROTS, TRAIN_TINY, hub_env, run_here, run_script, serving
from tests.fakehub import FakeHub
from tests.test_app import bad_files
from tests.test_monitoring import SMALL_BASELINE, run_monitor


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(folder: Path) -> list[dict]:
    paths = sorted(folder.glob("feedback-*.jsonl"))
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


# -- the served app ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    model: Path
    log_dir: Path
    photo: Path
    """A macaw photo outside ``parrot_subset`` (its first six per class), reported as macaw."""
    other: Path
    """An image of no bird, reported as "none of these"."""
    answers: list[dict]
    refusals: dict[str, str]
    endpoints: list[str]
    page: str
    mirrored: dict[str, bytes]


@pytest.fixture(scope="module")
def served(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    root = tmp_path_factory.mktemp("feedback")
    log_dir = root / "log"
    photo = sorted((PARROTS / "macaw").iterdir())[-1]
    other = root / "noise.png"
    Image.effect_noise((120, 90), 70).convert("RGB").save(other)
    with FakeHub() as hub:
        env = {"BIRD_MODEL": str(trained), "BIRD_LOG_DIR": str(log_dir), **hub_env(hub, root / "hf-home"),
               "BIRD_LOG_REPO": "tester/bird-log", "BIRD_LOG_EVERY": "60"}
        with serving(env) as app:
            client = Client(app.url, verbose=False)
            api = client.view_api(return_format="dict", print_info=False)
            client.predict(handle_file(str(photo)), api_name="/predict")  # a visitor reports on an answer
            client.predict(handle_file(str(other)), api_name="/predict")
            answers = [
                client.predict(handle_file(str(photo)), "macaw", api_name="/feedback"),
                client.predict(handle_file(str(photo)), "macaw", api_name="/feedback"),  # twice: stored once
                client.predict(handle_file(str(other)), NONE_OF_THESE, api_name="/feedback"),
            ]
            refusals = {}
            for name, choice in (("not a class of the model", "dodo"), ("a path", "../macaw"),
                                 ("a path inside", "macaw/../../x"), ("empty", ""), ("the page's value", "right")):
                with pytest.raises(AppError) as raised:
                    client.predict(handle_file(str(photo)), choice, api_name="/feedback")
                refusals[name] = str(raised.value)
            for name, (path, message) in bad_files(root / "bad").items():
                with pytest.raises(AppError) as raised:
                    client.predict(handle_file(str(path)), "macaw", api_name="/feedback")
                refusals[name] = str(raised.value)
                # A file whose header passes was never answered, which is the refusal it gets.
                expected = "send this photo to be classified first" if name == "truncated" else message
                assert expected in refusals[name], f"{name}: got {raised.value}"
            page = urllib_get(app.url + "config")
        mirrored = hub.files("tester/bird-log", repo_type="dataset")
    return Served(trained, log_dir, photo, other, answers, refusals, sorted(api["named_endpoints"]), page, mirrored)


def urllib_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_a_correction_through_the_api_is_stored_pending_under_its_class(served: Served) -> None:
    assert served.answers == [{"class": "macaw"}, {"class": "macaw"}, {"class": NONE_OF_THESE}]
    pending = served.log_dir / FEEDBACK_DIR / PENDING_DIR
    [stored] = [path for path in pending.rglob("*") if path.is_file()]
    assert stored.parent.name == "macaw" and stored.stem == sha256(served.photo)
    difference = np.abs(load_rgb(stored, 64).astype(int) - load_rgb(served.photo, 64).astype(int)).mean()
    assert difference < 3, f"the same pixels (re-encoded without metadata), mean difference {difference}"
    [unknown] = [path for path in (served.log_dir / FEEDBACK_DIR / NONE_DIR).iterdir() if path.is_file()]
    assert unknown.stem == sha256(served.other)

    macaw, none = records(served.log_dir)  # the repeated report is stored and counted once
    classes = read_model_folder(served.model).classes
    assert macaw["reported"] == "macaw" and macaw["answer"] in classes and macaw["via"] == "api"
    assert macaw["image"] == stored.relative_to(served.log_dir).as_posix() and macaw["sha256"] == sha256(served.photo)
    assert macaw["model_path"] == str(served.model.resolve()) and macaw["format"] == "JPEG"
    assert none["reported"] == NONE_OF_THESE and none["image"] == unknown.relative_to(served.log_dir).as_posix()
    assert served.photo.name not in json.dumps([macaw, none]), "the visitor's file name is never kept"


def test_refused_reports_say_why_and_store_nothing(served: Served) -> None:
    for name in ("not a class of the model", "a path", "a path inside", "empty", "the page's value"):
        assert "Unknown class: choose one of 'amazon green parrot'" in served.refusals[name], name
        assert "or 'none of these'" in served.refusals[name]
    assert "dodo" not in served.refusals["not a class of the model"], "a stranger's text is not echoed"
    stored = sorted(path.relative_to(served.log_dir).as_posix() for path in served.log_dir.rglob("*")
                    if path.is_file() and path.name != MARKER)
    assert [path for path in stored if not path.startswith("predictions-")] == sorted([
        *[path.relative_to(served.log_dir).as_posix() for path in (served.log_dir / FEEDBACK_DIR).rglob("*.*")
          if path.is_file() and path.name != MARKER],
        *[path.name for path in served.log_dir.glob("feedback-*.jsonl")],
    ])
    assert len(stored) == 3 + len(list(served.log_dir.glob("predictions-*"))), stored


def test_the_page_says_feedback_keeps_the_photo_and_the_api_has_its_endpoints(served: Served) -> None:
    assert served.endpoints == ["/explain", "/feedback", "/info", "/predict", "/predict_batch"]
    assert "Sending feedback keeps your photo" in served.page
    assert "Mengirim masukan menyimpan foto Anda" in served.page, "and says it in Indonesian too"
    for button in ("Right", "None of these", *(f"It is: {name}" for name in read_model_folder(served.model).classes)):
        assert f'"{button}"' in served.page, button


def test_feedback_reaches_the_hub_mirror(served: Served) -> None:
    local = {path.relative_to(served.log_dir).as_posix(): path.read_bytes()
             for path in served.log_dir.rglob("*") if path.is_file()}
    feedback = {name: data for name, data in local.items() if name.startswith("feedback")}
    assert len(feedback) == 4  # two photos, their records, and the feedback folder's marker
    assert {name: served.mirrored.get(name) for name in feedback} == feedback


def test_train_py_trains_on_accepted_corrections_only(served: Served, parrot_subset: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing reaches training before the operator accepts it; then the accepted photo does."""
    log_dir = tmp_path / "log"
    shutil.copytree(served.log_dir, log_dir)
    run = tmp_path / "run"
    arguments = ("--data", parrot_subset, "--data", log_dir / FEEDBACK_DIR, "--output", run, *TRAIN_TINY)
    refused = run_here("train.py", *arguments)
    assert refused.returncode == 2 and "nothing to train on until some are accepted" in refused.stderr, refused.stderr
    assert "1 feedback reports are pending review" in refused.stdout

    assert review(["list"], environ={"BIRD_LOG_DIR": str(log_dir)}) == 0
    assert "macaw" in capsys.readouterr().out
    assert review(["accept", "--all"], environ={"BIRD_LOG_DIR": str(log_dir)}) == 0

    result = run_script("train.py", *arguments)
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "run_config.json").read_text())
    assert config["classes"] == read_model_folder(served.model).classes, "'none of these' is no class"
    split = json.loads((run / "split.json").read_text())
    used = [row for rows in split.values() for row in rows if row["source"] == 1]
    assert [(row["label"], row["path"].split("/")[0]) for row in used] == [("macaw", "macaw")]
    assert [row for row in json.loads((run / "dataset_report.json").read_text())["skipped"] if row["source"] == 1] == []


def test_the_monitor_command_shows_visitor_reports(served: Served) -> None:
    report = run_monitor("--log-dir", served.log_dir, "--model", served.model)
    assert report.returncode in (0, 1), report.stderr
    assert "Visitor reports: 2 (right " in report.stdout
    assert "none of these 1); accuracy " in report.stdout
    assert "not enough data yet (1 of 30)  Visitors say the model is right " in report.stdout


# -- the Hub copy as a training source ----------------------------------------------------------


def test_the_mirrored_feedback_folder_is_a_hub_data_source(fake_hub: FakeHub, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``hf:OWNER/LOG/feedback`` trains on the mirror's accepted reports only, so one class is enough."""
    repo = tmp_path / "log"
    feedback = repo / FEEDBACK_DIR
    picture(feedback / ACCEPTED_DIR / "macaw" / "a.png", "red")
    picture(feedback / PENDING_DIR / "gray parrot" / "c.png", "gray")
    picture(feedback / NONE_DIR / "b.png", "blue")
    (feedback / MARKER).touch()
    (repo / "predictions-2025-06-01.jsonl").write_text("{}\n")
    fake_hub.seed_repo("tester/bird-log", repo, repo_type="dataset")

    resolved = resolve_source("hf:tester/bird-log/feedback")

    assert resolved.provenance["subfolder"] == f"{FEEDBACK_DIR}/{ACCEPTED_DIR}"
    assert sorted(path.name for path in resolved.path.iterdir()) == ["macaw"]
    assert "1 feedback reports are pending review and not used" in capsys.readouterr().out


# -- the store and the page's buttons, in process ----------------------------------------------


def picture(path: Path, colour: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def test_page_choices_store_what_the_visitor_says_about_the_answer_shown(tmp_path: Path) -> None:
    """The page's choices, in process: each refers to the answer this caller saw for this photo."""
    from bird_model.settings import FeedbackSettings
    from bird_model.web.answers import RecentAnswers
    from bird_model.web.feedback import RIGHT, Corrections, confirmation

    store = FeedbackStore(tmp_path / "log", ModelIdentity(path="/m"), ["macaw", "gray parrot"], FeedbackSettings())
    answers = RecentAnswers()
    corrections = Corrections(store, answers)
    shown = Prediction({"gray parrot": 0.7, "macaw": 0.3}, outlier_score=0.5, unknown=False)
    photos = [picture(tmp_path / f"{index}.png", colour) for index, colour in enumerate(["red", "green", "blue"])]
    with pytest.raises(FeedbackError, match="send this photo to be classified first"):
        corrections.submit(str(photos[0]), "macaw", "visitor", "page")  # no answer yet: nothing to correct
    for photo in photos:
        answers.keep("visitor", sha256(photo), shown)

    receipts = [corrections.submit(str(photos[0]), RIGHT, "visitor", "page"),
                corrections.submit(str(photos[1]), "macaw", "visitor", "page"),
                corrections.submit(str(photos[2]), NONE_OF_THESE, "visitor", "page")]
    assert [(r["reported"], r["answer"], r["via"]) for r in records(tmp_path / "log")] == [
        ("gray parrot", "gray parrot", "page"), ("macaw", "gray parrot", "page"), (NONE_OF_THESE, "gray parrot", "page")
    ]
    assert [confirmation(receipt, "en") for receipt in receipts] == [
        "Saved: you said gray parrot. Thank you.", "Saved: you said macaw. Thank you.",
        "Saved: you said it is none of these birds. Thank you."]
    assert confirmation(receipts[1], "id") == "Tersimpan: Anda bilang macaw. Terima kasih."
    with pytest.raises(FeedbackError, match="send this photo to be classified first"):
        corrections.submit(str(photos[1]), "macaw", "someone else", "page")  # another caller's answer is not theirs
    with pytest.raises(FeedbackError, match="No photo received"):
        corrections.submit(None, RIGHT, "visitor", "page")

    unknown = picture(tmp_path / "3.png", "white")
    answers.keep("visitor", sha256(unknown), Prediction({"macaw": 0.9, "gray parrot": 0.1}, 9.0, unknown=True))
    assert corrections.submit(str(unknown), RIGHT, "visitor", "page").reported == NONE_OF_THESE, \
        "'Right' agrees with the unknown verdict"


# -- visitor-reported accuracy in the report ----------------------------------------------------


MODEL = ModelIdentity(path="/models/birds")
SPLIT = SplitMetrics(accuracy=0.95, macro_f1=0.95, count=20, correct=19, per_class={}, confusion_matrix=[],
                     mean_confidence_correct=None, mean_confidence_wrong=None)
FOLDER = ModelFolder(Path("/models/birds"), ["macaw", "gray parrot"], {}, Metrics(validation=SPLIT, training=SPLIT))


def write_reports(folder: Path, reports: list[tuple[str, str]], model: ModelIdentity = MODEL,
                  when: datetime | None = None) -> None:
    """(visitor's class, model's top class) pairs as feedback records of one day."""
    when = when or datetime.now(timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"feedback-{when:%Y-%m-%d}.jsonl").open("a") as log:
        for reported, answer in reports:
            record = {"time": when.isoformat(), **model.fields(), "reported": reported, "answer": answer,
                      "unknown": reported == NONE_OF_THESE}
            log.write(json.dumps(record) + "\n")


def report_text(folder: Path, since: datetime | None = None) -> tuple[str, list[str]]:
    visitors = read_visitor_reports(folder, MODEL, FOLDER, since)
    report = build_report(read_log(folder, MODEL, SMALL_BASELINE), SMALL_BASELINE, "test model", visitors)
    return format_report(report), [check.name for check in report.alarms]


def test_report_shows_visitor_accuracy_per_class(tmp_path: Path) -> None:
    write_reports(tmp_path, [("macaw", "macaw")] * 3 + [("macaw", "gray parrot")] + [("gray parrot", "gray parrot")]
                  + [(NONE_OF_THESE, "macaw")] * 2)
    write_reports(tmp_path, [("macaw", "gray parrot")] * 5, model=ModelIdentity(path="/another/model"))
    (tmp_path / "feedback-2025-01-01.jsonl").write_text('{"cut": \n')

    text, alarms = report_text(tmp_path)

    assert "Visitor reports: 7 (right 4, wrong 1, none of these 2); accuracy 80.0% vs validation 95.0%" in text
    assert "  macaw              4 reports  right     3  wrong     1" in text
    assert "  gray parrot        1 reports  right     1  wrong     0" in text
    assert "  none of these      2 reports  the model had said unknown for 2" in text
    assert "not enough data yet (5 of 30)  Visitors say the model is right 80% of the time; validation promised 95%" in text
    assert "visitor accuracy: 80.0% on 5 reports vs validation 95.0%" in text
    assert alarms == []
    since = datetime.now(timezone.utc) + timedelta(days=1)
    assert "Visitor reports: 0 (right 0, wrong 0, none of these 0); accuracy n/a" in report_text(tmp_path, since)[0]


def test_visitor_accuracy_alarms_well_below_validation_on_enough_reports(tmp_path: Path) -> None:
    assert VISITOR_MIN_REPORTS == 30 and VISITOR_ACCURACY_MARGIN == 0.15  # the README's figures
    wrong = 11  # 63.3% right, under 95% - 15 points
    write_reports(tmp_path / "few", [("macaw", "gray parrot")] * (VISITOR_MIN_REPORTS - 1))
    right = VISITOR_MIN_REPORTS - wrong
    write_reports(tmp_path / "low", [("macaw", "gray parrot")] * wrong + [("macaw", "macaw")] * right)
    write_reports(tmp_path / "fine", [("macaw", "gray parrot")] * 3 + [("macaw", "macaw")] * (VISITOR_MIN_REPORTS - 3))

    assert report_text(tmp_path / "few")[1] == []
    text, alarms = report_text(tmp_path / "low")
    assert alarms == ["visitor accuracy"]
    assert re.search(r"^ALARM +Visitors say the model is right 63% of the time; validation promised 95%$", text, re.M)
    assert "visitor accuracy: 63.3% on 30 reports vs validation 95.0% (alarm under 80.0%" in text
    assert report_text(tmp_path / "fine")[1] == []

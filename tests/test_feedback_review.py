"""Visitors' reports kept pending, bounded, reviewed by the operator, trained on once accepted,
and a retraining that a flood of accepted reports spoiled refused per class.

All in process and without training: the store is given the answer the web side served, the
review command runs through its ``main``, ``train.py`` stops before TensorFlow loads, and the
release guard is fed constructed probabilities.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import train
from bird_model.evaluation import ClassComparison, Metrics, ParentComparison, classification_metrics
from bird_model.feedback import NONE_OF_THESE, FeedbackError, FeedbackStore, folder_name_problem
from bird_model.feedback import store as store_module
from bird_model.feedback.__main__ import main as review
from bird_model.hub import HubError
from bird_model.images import ImageError
from bird_model.inference import Prediction
from bird_model.logfolder import MARKER, MIRROR_PATTERNS, REVIEWS_FILE
from bird_model.monitoring import ModelIdentity
from bird_model.release import MAX_CLASS_DROP, Parent, compare_with_parent, print_comparison, refusal, target_branch
from bird_model.settings import FeedbackSettings
from bird_model.sources import DataSourceError, resolve_source

CLASSES = ["macaw", "gray parrot", "odd/name"]
ANSWER = Prediction({"gray parrot": 0.7, "macaw": 0.2, "odd/name": 0.1}, outlier_score=0.5, unknown=False)


def photo(colour: tuple[int, int, int], size: int = 40) -> bytes:
    """A PNG of noise around ``colour``: distinct colours give distinct files."""
    import io

    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_store(log: Path, **settings: float) -> FeedbackStore:
    return FeedbackStore(log, ModelIdentity(path="/m"), CLASSES, FeedbackSettings(**settings))


def send(store: FeedbackStore, upload: bytes, reported: str, caller: str = "10.0.0.1"):
    return store.report(upload, reported, answer=ANSWER, caller=caller, via="api")


def records(log: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(log.glob("feedback-*.jsonl")) for line in path.read_text().splitlines()]


# -- the store -------------------------------------------------------------------------------


def test_class_names_become_folders_only_as_they_are() -> None:
    for bad in ("", ".", "..", "a/b", "a\\b", "a\x00b", ".hidden", "x" * 300):
        assert folder_name_problem(bad) is not None, bad
    for good in ("macaw", "gray parrot", "Ara ararauna (blue-and-yellow)", "попугай", "none of these?"):
        assert folder_name_problem(good) is None, good


def test_a_report_lands_pending_with_the_answer_it_corrects(tmp_path: Path) -> None:
    log = tmp_path / "log"
    store = open_store(log)
    red, blue = photo((200, 0, 0)), photo((0, 0, 200))

    first = send(store, red, "macaw")
    none = send(store, blue, NONE_OF_THESE)

    assert first.new and first.image == f"feedback/pending/macaw/{sha(red)}.png"
    assert (log / first.image).read_bytes() == red
    assert none.image == f"feedback/none-of-these/{sha(blue)}.png" and (log / none.image).is_file()
    assert (log / "feedback" / MARKER).is_file()
    macaw, unknown = records(log)
    assert (macaw["reported"], macaw["answer"], macaw["confidence"]) == ("macaw", "gray parrot", 0.7)
    assert macaw["unknown"] is False
    assert macaw["image"] == first.image and macaw["sha256"] == sha(red) and macaw["via"] == "api"
    assert unknown["reported"] == NONE_OF_THESE
    written = "".join(path.read_text(errors="replace") for path in log.rglob("*") if path.is_file())
    assert "10.0.0.1" not in written, "the caller is never written"
    assert not list(log.rglob(".feedback-incoming-*"))


def test_a_store_nobody_reports_to_adds_nothing_to_the_log_folder(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    open_store(tmp_path / "log")
    assert list((tmp_path / "log").iterdir()) == [], "nothing new for the mirror to upload"


def test_refused_choices_and_files_store_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "log")
    assert store.storable == ["macaw", "gray parrot"]
    with pytest.raises(FeedbackError, match="'odd/name' cannot be stored: it holds a path separator"):
        send(store, photo((1, 2, 3)), "odd/name")
    for choice in ("dodo", "../macaw", "", None):
        with pytest.raises(FeedbackError) as refused:
            store.check_choice(choice)
        assert "Unknown class: choose one of 'macaw', 'gray parrot' or 'none of these'." == str(refused.value)
    with pytest.raises(ImageError):
        send(store, b"not an image at all", "macaw")
    assert records(tmp_path / "log") == []

    many = FeedbackStore(tmp_path / "many", ModelIdentity(path="/m"), [f"species {i:03d}" for i in range(500)],
                         FeedbackSettings())
    with pytest.raises(FeedbackError) as refused:
        many.check_choice("dodo")
    message = str(refused.value)
    assert "'species 000'" in message and "and 488 more classes" in message and len(message) < 300


def test_one_caller_stores_at_most_per_hour_and_a_photo_counts_once(tmp_path: Path) -> None:
    store = open_store(tmp_path / "log", per_hour=3)
    photos = [photo((10 * i, 100, 50)) for i in range(5)]

    assert [send(store, upload, "macaw").new for upload in photos[:3]] == [True, True, True]
    assert not send(store, photos[0], "macaw").new, "a repeat is a no-op, not a refusal"
    assert send(store, photos[0], "gray parrot").new, "the same photo under another class counts once"
    with pytest.raises(FeedbackError) as refused:
        send(store, photos[3], "macaw")
    assert str(refused.value) == ("Thank you, but this demo keeps at most 3 of one visitor's reports an hour; "
                                  "your photo was not kept. Please try again later.")
    assert send(store, photos[3], "macaw", caller="10.0.0.2").new, "another caller has its own hour"
    assert len(records(tmp_path / "log")) == 5


def test_everyone_together_stores_at_most_per_minute_and_the_flood_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "log", per_minute=2)
    photos = [photo((40 * i, 10, 90)) for i in range(3)]
    assert [send(store, upload, "macaw", caller=f"10.0.0.{i}").new for i, upload in enumerate(photos[:2])] == [True] * 2
    monkeypatch.setattr(store_module, "_photo_bytes", lambda upload: pytest.fail("decoded a refused report"))
    with pytest.raises(FeedbackError, match="receiving many reports just now") as refused:
        send(store, photos[2], "macaw", caller="10.0.0.9")
    assert refused.value.reason == "busy"
    assert len(records(tmp_path / "log")) == 2


def test_the_storage_cap_is_counted_from_disk_and_holds_across_restarts(tmp_path: Path) -> None:
    photos = [photo((30 * i, 60, 90), size=64) for i in range(4)]
    cap_mb = (len(photos[0]) + len(photos[1]) + len(photos[2]) // 2) / (1 << 20)  # room for two and a half
    store = open_store(tmp_path / "log", max_mb=cap_mb)
    send(store, photos[0], "macaw", caller="a")
    send(store, photos[1], NONE_OF_THESE, caller="b")
    with pytest.raises(FeedbackError, match="^Thank you, but this demo has stored all the feedback photos it may"):
        send(store, photos[2], "macaw", caller="c")

    restarted = open_store(tmp_path / "log", max_mb=cap_mb)
    assert restarted.bytes == len(photos[0]) + len(photos[1])
    with pytest.raises(FeedbackError, match="stored all the feedback photos it may"):
        send(restarted, photos[3], "gray parrot", caller="d")
    assert len(records(tmp_path / "log")) == 2


def test_reports_of_the_old_layout_move_into_pending_and_none_of_these(tmp_path: Path) -> None:
    log = tmp_path / "log"
    red, blue, green = photo((200, 0, 0)), photo((0, 0, 200)), photo((0, 200, 0))
    for relative, data in ((f"feedback/macaw/{sha(red)}.png", red), (f"feedback/pending/{sha(green)}.png", green),
                           (f"feedback-none-of-these/{sha(blue)}.png", blue)):
        (log / relative).parent.mkdir(parents=True, exist_ok=True)
        (log / relative).write_bytes(data)

    store = open_store(log)

    files = sorted(path.relative_to(log).as_posix() for path in log.rglob("*") if path.is_file())
    assert files == sorted([f"feedback/{MARKER}", f"feedback/pending/macaw/{sha(red)}.png",
                            f"feedback/pending/pending/{sha(green)}.png",  # a class named "pending" survives
                            f"feedback/none-of-these/{sha(blue)}.png"])
    assert store.bytes == len(red) + len(blue) + len(green)
    assert not send(store, red, "macaw").new, "a moved report is still the same report"


# -- the review command --------------------------------------------------------------------------


@pytest.fixture
def pending(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A log folder with three pending reports (two macaw, one gray parrot) and one "none of these"."""
    log = tmp_path / "log"
    store = open_store(log)
    uploads = {"macaw-1": photo((200, 0, 0)), "macaw-2": photo((180, 20, 0)), "gray": photo((90, 90, 90)),
               "none": photo((0, 0, 200))}
    for key, upload in uploads.items():
        send(store, upload, {"macaw-1": "macaw", "macaw-2": "macaw", "gray": "gray parrot"}.get(key, NONE_OF_THESE))
    return log, uploads


def run_review(capsys: pytest.CaptureFixture[str], *argv: str, environ: dict[str, str] | None = None
               ) -> tuple[int, str, str]:
    code = review(list(argv), environ=environ or {})
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_pending_reports_with_the_apps_log_folder(pending, capsys) -> None:
    log, uploads = pending
    code, out, err = run_review(capsys, "list", environ={"BIRD_LOG_DIR": str(log)})

    assert code == 0, err
    assert f"3 feedback reports pending review (photos in {log / 'feedback' / 'pending'}/CLASS/):" in out
    for key, reported in (("macaw-1", "macaw"), ("macaw-2", "macaw"), ("gray", "gray parrot")):
        # id, the visitor's class, the model's answer, the time
        row = rf"^  {sha(uploads[key])[:10]}  {reported} +gray parrot  \d{{4}}-\d\d-\d\dT[\d:.]+Z$"
        assert re.search(row, out, re.MULTILINE), (row, out)
    assert "Pending per class: macaw 2, gray parrot 1. None accepted yet." in out
    assert sha(uploads["none"])[:10] not in out, "'none of these' is never a class to review"


def test_accept_by_id_and_by_class_then_training_reads_accepted_only(pending, capsys) -> None:
    log, uploads = pending
    code, out, _ = run_review(capsys, "--log-dir", str(log), "accept", sha(uploads["macaw-1"])[:6])
    assert code == 0 and out.startswith("Accepted 1 reports (macaw 1): train.py --data")
    moved = log / "feedback" / "accepted" / "macaw" / f"{sha(uploads['macaw-1'])}.png"
    assert moved.read_bytes() == uploads["macaw-1"]

    resolved = resolve_source(str(log / "feedback"))
    assert "2 feedback reports are pending review and not used" in capsys.readouterr().out
    assert resolved.path == (log / "feedback" / "accepted").resolve()
    assert resolved.record() == {"spec": "feedback", "type": "local", "name": "feedback", "subfolder": "accepted"}
    assert [path.name for path in resolved.path.iterdir()] == ["macaw"]

    code, out, _ = run_review(capsys, "--log-dir", str(log), "accept", "--class", "gray parrot")
    assert code == 0 and "Accepted 1 reports (gray parrot 1)" in out
    code, out, _ = run_review(capsys, "--log-dir", str(log), "list")
    assert "1 feedback reports pending review" in out and "Accepted so far: 2 (" in out
    decisions = [json.loads(line) for line in (log / "feedback" / REVIEWS_FILE).read_text().splitlines()]
    assert [(d["class"], d["decision"]) for d in decisions] == [("macaw", "accepted"), ("gray parrot", "accepted")]
    assert decisions[0]["sha256"] == sha(uploads["macaw-1"]) and decisions[0]["id"] == sha(uploads["macaw-1"])[:10]


def test_reject_all_deletes_the_photos_and_logs_the_decisions(pending, capsys) -> None:
    log, uploads = pending
    code, out, _ = run_review(capsys, "--log-dir", str(log), "reject", "--all")
    assert code == 0 and out.startswith("Rejected 3 reports (macaw 2, gray parrot 1): their photos are deleted.")
    assert not [path for path in (log / "feedback" / "pending").rglob("*") if path.is_file()]
    assert len((log / "feedback" / REVIEWS_FILE).read_text().splitlines()) == 3
    code, out, _ = run_review(capsys, "--log-dir", str(log), "list")
    assert code == 0 and out.startswith("No feedback report is pending review")


def test_review_refusals_are_one_line_and_exit_2(pending, capsys, tmp_path: Path) -> None:
    log, uploads = pending
    # Two reports whose ids share 8 digits: a second file named so (a real SHA-256 collision is out of reach).
    original = log / "feedback" / "pending" / "macaw" / f"{sha(uploads['macaw-1'])}.png"
    clash = original.with_name(sha(uploads["macaw-1"])[:8] + "f" * 56 + ".png")
    clash.write_bytes(uploads["macaw-1"])

    cases = {
        ("accept",): "accept needs exactly one of: report ids, --class NAME, --all.",
        ("accept", "--all", "--class", "macaw"): "accept needs exactly one of",
        ("accept", "zz"): "'zz' is not a report id: give at least 4 hex digits",
        ("reject", "0000000"): "No pending report has the id 0000000",
        ("accept", sha(uploads["macaw-1"])[:8]): f"The id {sha(uploads['macaw-1'])[:8]} is ambiguous: ",
        ("accept", "--class", "dodo"):
            "No pending report of the class 'dodo'; pending classes: 'gray parrot', 'macaw'.",
    }
    for argv, message in cases.items():
        code, out, err = run_review(capsys, "--log-dir", str(log), *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert original.is_file() and clash.is_file(), "a refused selection touches nothing"
    code, _, err = run_review(capsys, "--log-dir", str(tmp_path / "missing"), "list")
    assert code == 2 and "is not a folder; point --log-dir (or BIRD_LOG_DIR) at the app's log folder." in err


def test_training_on_a_feedback_folder_with_nothing_accepted_stops(pending, capsys) -> None:
    log, _ = pending
    assert train.main(["--data", str(log / "feedback"), "--output", str(log.parent / "run"), "--base-weights", "none"]) == 2
    out, err = capsys.readouterr()
    assert "3 feedback reports are pending review and not used: python -m bird_model.feedback list" in out
    assert "is a feedback folder with no accepted report, so there is nothing to train on until some are accepted " \
           "(3 pending: review them with python -m bird_model.feedback list" in err
    assert not (log.parent / "run").exists()


def test_the_whole_log_folder_never_yields_pending_reports(pending) -> None:
    log, _ = pending
    with pytest.raises(DataSourceError):  # none-of-these/ and pending/ are never a dataset
        resolve_source(str(log))


def test_the_mirror_carries_the_feedback_folder_and_not_the_files_being_written(pending) -> None:
    log, _ = pending
    (log / ".feedback-incoming-x").write_bytes(b"partial")
    files = [path.relative_to(log).as_posix() for path in log.rglob("*") if path.is_file()]
    mirrored = [name for name in files if any(fnmatch.fnmatch(name, pattern) for pattern in MIRROR_PATTERNS)]
    assert sorted(set(files) - set(mirrored)) == [".feedback-incoming-x"]


# -- settings --------------------------------------------------------------------------------------


def test_feedback_settings_come_from_the_environment() -> None:
    assert FeedbackSettings.from_environment({}) == FeedbackSettings(per_hour=20, per_minute=30, max_mb=1024)
    assert FeedbackSettings.from_environment({"BIRD_FEEDBACK_PER_HOUR": "5", "BIRD_FEEDBACK_PER_MINUTE": "9",
                                              "BIRD_FEEDBACK_MAX_MB": "2.5"}) == \
        FeedbackSettings(per_hour=5, per_minute=9, max_mb=2.5)
    assert FeedbackSettings(max_mb=5).max_bytes == 5 * 1024 * 1024
    for variable, value in (("BIRD_FEEDBACK_PER_HOUR", "0"), ("BIRD_FEEDBACK_PER_HOUR", "many"),
                            ("BIRD_FEEDBACK_PER_MINUTE", "0"),
                            ("BIRD_FEEDBACK_MAX_MB", "-1"), ("BIRD_FEEDBACK_MAX_MB", "inf"),
                            ("BIRD_FEEDBACK_MAX_MB", "nan")):
        with pytest.raises(ValueError, match=f"^{variable}="):
            FeedbackSettings.from_environment({variable: value})


# -- the release guard per class ---------------------------------------------------------------------

PARROTS = ["amazon green parrot", "gray parrot", "macaw"]


def comparison_for(new_right: dict[str, int], parent_right: dict[str, float] | None = None,
                   per_class: int = 10) -> ParentComparison:
    """The parent scored ``parent_right`` per class (90% on each by default); the new model gets
    ``new_right[class]`` of ``per_class`` right, its mistakes called "gray parrot" (or "macaw" for
    gray parrots), as a flood of reports would teach."""
    parent_right = parent_right or dict.fromkeys(PARROTS, 0.9)
    samples, probabilities = [], []
    for label, name in enumerate(PARROTS):
        for index in range(per_class):
            samples.append(SimpleNamespace(sha256=f"{name}-{index}", label=name))
            wrong = PARROTS.index("macaw" if name == "gray parrot" else "gray parrot")
            probabilities.append(np.eye(3)[label if index < new_right[name] else wrong])
    dataset = SimpleNamespace(samples=samples, classes=PARROTS)
    split = SimpleNamespace(validation=list(range(len(samples))))
    parent = Parent("o/birds", "abc1234", float(np.mean(list(parent_right.values()))),
                    frozenset(sample.sha256 for sample in samples), parent_right)
    return compare_with_parent(parent, dataset, split, np.array(probabilities))


def metrics_with(comparison: ParentComparison) -> Metrics:
    split = classification_metrics(np.array([0, 1, 2]), np.eye(3), PARROTS)
    return Metrics(split, split, parent_comparison=comparison)


def test_a_model_that_loses_one_class_is_refused_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert MAX_CLASS_DROP == 0.25
    flooded = comparison_for({"amazon green parrot": 10, "gray parrot": 10, "macaw": 1})
    assert flooded.per_class["macaw"] == ClassComparison(photos=10, parent_accuracy=0.9, new_accuracy=0.1)
    assert flooded.new_accuracy == pytest.approx(0.7)

    with pytest.raises(HubError) as refused:
        target_branch(metrics_with(flooded), tag=None, force=False)
    message = str(refused.value)
    assert message.startswith("the new model is worse than the one on main on the 30 photos that validated it: "
                              "it loses more than 25 points on macaw 90% -> 10%; overall 70.00% vs its 90.00%")
    assert "\n" not in message and "--force" in message
    assert target_branch(metrics_with(flooded), tag="v2", force=False) == "candidate-v2"
    assert target_branch(metrics_with(flooded), tag=None, force=True) == "main"

    print_comparison(flooded)  # what train.py prints after training
    assert capsys.readouterr().out.splitlines() == [
        "On 30 of the 30 photos that validated the published model (abc1234): 70.00% vs its 90.00% (-20.00%).",
        "Per class, the largest change is macaw: 10.00% vs its 90.00% on 10 photos (-80.0 points; main is refused "
        "beyond -25 on any class).",
        f"Warning: {refusal(flooded)}.",
    ]


def test_the_class_rule_holds_when_the_overall_figure_improves() -> None:
    # Two classes up 30 points, one down 30: overall 76.67% -> 86.67% is better, macaw is not.
    parent = {"amazon green parrot": 0.7, "gray parrot": 0.7, "macaw": 0.9}
    hidden = comparison_for({"amazon green parrot": 10, "gray parrot": 10, "macaw": 6}, parent)
    assert not hidden.is_worse and hidden.new_accuracy > hidden.parent_accuracy
    assert refusal(hidden).endswith("it loses more than 25 points on macaw 90% -> 60%")
    # Down 20 points on a class (two photos of ten): noise a retraining may show, not refused.
    assert refusal(comparison_for({"amazon green parrot": 10, "gray parrot": 10, "macaw": 7})) is None


def test_metrics_json_keeps_per_class_comparisons_and_reads_older_documents() -> None:
    flooded = comparison_for({"amazon green parrot": 9, "gray parrot": 9, "macaw": 2})
    document = json.loads(json.dumps(metrics_with(flooded).to_json()))
    assert document["parent_comparison"]["per_class"]["macaw"] == {"photos": 10, "parent_accuracy": 0.9,
                                                                   "new_accuracy": 0.2}
    assert Metrics.from_json(document) == metrics_with(flooded)

    older = {key: value for key, value in document["parent_comparison"].items() if key != "per_class"}
    read = Metrics.from_json({**document, "parent_comparison": older}).parent_comparison
    assert read.per_class == {} and refusal(read) is not None  # the overall rule alone, as before

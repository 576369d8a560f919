"""The prediction log, the training baseline and the drift report, ending with a simulated shift.

The simulation serves a model with app.py, sends it 200 photos like its training data, then
restarts it and sends 200 photos of a changed world (one species only, and images that are
no bird at all) from 16 callers at once, and checks what the monitor command says after each
phase and that every answered request is in the log.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from huggingface_hub import HfApi
from PIL import Image

from bird_model.artifacts import BASELINE_FILE, read_model_folder
from bird_model.inference import Prediction
from bird_model.monitor import main as monitor_main
from bird_model.monitoring import (
    MAX_TIMELINE_BUCKETS,
    MIN_RECORDS,
    Baseline,
    LogSettings,
    LogSummary,
    ModelIdentity,
    PredictionLog,
    Timeline,
    build_report,
    compute_baseline,
    format_report,
    js_distance,
    psi,
    read_baseline,
    read_log,
)
from bird_model.monitoring.log import start_mirror
from bird_model.ood import fit_detector
from bird_model.web import Dashboard
from tests.conftest import PARROTS, QUIET_ENV, ROOT, hub_env, serving
from tests.fakehub import FakeHub

CLASSES = ["macaw", "gray parrot"]
MODEL = ModelIdentity(path="/models/birds")


def prediction(confidence: float = 0.9, unknown: bool = False) -> Prediction:
    return Prediction({"macaw": confidence, "gray parrot": 1 - confidence}, outlier_score=0.3, unknown=unknown)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "upload.png"
    Image.new("RGB", (40, 30), "green").save(path)
    return path


def log_lines(folder: Path) -> list[dict]:
    paths = sorted(folder.glob("predictions-*.jsonl"))
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def lines_on_disk(folder: Path, expected: int, timeout: float) -> int:
    """Complete log lines in ``folder``, polled until there are ``expected`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        count = sum(path.read_bytes().count(b"\n") for path in folder.glob("predictions-*.jsonl"))
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def run_monitor(*args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m bird_model.monitor`` as a user runs it; the app's variables are unset unless ``env`` sets them."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("BIRD_")}
    return subprocess.run(
        [sys.executable, "-m", "bird_model.monitor", *map(str, args)],
        cwd=cwd,
        env={**inherited, **QUIET_ENV, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- drift statistics ---------------------------------------------------------------------


def test_psi_and_js_distance_match_hand_computed_values() -> None:
    assert psi([1, 3], [3, 1], smoothing=0) == pytest.approx(np.log(3))  # 0.5 ln 3 + 0.5 ln 3
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    # m = (0.75, 0.25): KL(p||m) = log2(4/3), KL(q||m) = (log2(2/3) + 1) / 2
    expected = np.sqrt((np.log2(4 / 3) + (np.log2(2 / 3) + 1) / 2) / 2)
    assert js_distance([7, 0], [5, 5]) == pytest.approx(expected)


def test_drift_scores_are_zero_for_the_same_shape_and_finite_for_empty_bins() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=0.02)
    assert js_distance([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert np.isfinite(psi([50, 0, 0], [0, 0, 40]))
    assert psi([50, 0, 0], [0, 0, 40]) > 1


# -- the baseline ---------------------------------------------------------------------------


def test_baseline_holds_training_classes_and_validation_histograms() -> None:
    rng = np.random.default_rng(0)
    train_labels = np.repeat([0, 1, 1], 10)
    train_features = rng.normal(size=(30, 8)) + train_labels[:, None] * 3
    validation_features = rng.normal(size=(20, 8))
    probabilities = rng.dirichlet([1, 1], size=20)
    detector = fit_detector(train_features, train_labels, validation_features, 0.97)

    baseline = compute_baseline(CLASSES, train_labels, probabilities, validation_features, detector).to_json()

    assert baseline["training_class_counts"] == [10, 20]
    assert baseline["confidence_edges"] == [round(0.1 * i, 1) for i in range(11)]
    assert sum(baseline["validation_confidence_counts"]) == sum(baseline["validation_outlier_counts"]) == 20
    assert baseline["validation_low_confidence_share"] == pytest.approx(np.mean(probabilities.max(axis=1) < 0.5))
    assert baseline["unknown_threshold"] in baseline["outlier_edges"]
    assert baseline["outlier_edges"] == sorted(baseline["outlier_edges"])
    above = int(np.sum(detector.score(validation_features) > detector.threshold))
    assert baseline["expected_unknown_share"] == pytest.approx((above + 1) / 21)  # conformal: a new photo's chance
    json.dumps(baseline)
    assert list(baseline) == [
        "format_version", "classes", "training_class_counts", "validation_count", "confidence_edges",
        "validation_confidence_counts", "low_confidence_threshold", "validation_low_confidence_share",
        "unknown_threshold", "outlier_edges", "validation_outlier_counts", "validation_unknown_share",
        "expected_unknown_share",
    ], "baseline.json keeps its keys and their order"
    assert Baseline.from_json(baseline).to_json() == baseline


def test_training_saves_the_baseline_and_the_app_downloads_it(trained: Path) -> None:
    from bird_model.artifacts import SERVING_PATTERNS

    baseline = json.loads((trained / BASELINE_FILE).read_text())
    metrics = read_model_folder(trained).metrics
    assert baseline["classes"] == read_model_folder(trained).classes
    assert baseline["validation_count"] == metrics.validation.count
    assert baseline["unknown_threshold"] == metrics.outliers.threshold
    assert sum(baseline["training_class_counts"]) == metrics.training.count
    assert BASELINE_FILE in SERVING_PATTERNS


# -- the log --------------------------------------------------------------------------------


def test_log_flushes_within_a_second_and_drains_on_close(tmp_path: Path, photo: Path) -> None:
    log = PredictionLog(tmp_path / "log", MODEL, CLASSES)
    written = time.monotonic()
    log.record(photo, prediction(0.8))
    assert lines_on_disk(tmp_path / "log", 1, timeout=5) == 1
    # A second is the promise; the rest is margin for a busy test machine's scheduler.
    assert time.monotonic() - written < 2.5, "a record waited more than a second in memory"

    slow = PredictionLog(tmp_path / "slow", MODEL, CLASSES, flush_seconds=3600)
    for _ in range(500):
        slow.record(photo, prediction(0.8))
    slow.close()
    log.close()
    records = log_lines(tmp_path / "slow")
    assert len(records) == 500
    assert records[0]["probabilities"] == [0.8, pytest.approx(0.2)]
    assert (records[0]["width"], records[0]["height"], records[0]["model_path"]) == (40, 30, "/models/birds")
    assert records[0]["time"].endswith("Z") and "image" not in records[0]
    assert not (tmp_path / "slow" / "images").exists()


def test_photos_are_kept_by_hash_only_when_asked(tmp_path: Path, photo: Path) -> None:
    log = PredictionLog(tmp_path, MODEL, CLASSES, keep_images=True)
    log.record(photo, prediction())
    log.record(photo, prediction())
    log.close()
    records = log_lines(tmp_path)
    assert records[0]["image"] == records[1]["image"] == f"images/{records[0]['sha256']}.png"
    stored = Image.open(tmp_path / records[0]["image"])
    assert np.array_equal(np.asarray(stored), np.asarray(Image.open(photo))), "a PNG keeps its pixels exactly"


def test_kept_photos_hold_nothing_but_pixels(tmp_path: Path) -> None:
    """GPS position, camera make, XMP, ICC profile and comments of an upload never reach the disk."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # camera make
    exif[0x0112] = 6  # orientation: applied to the pixels, then dropped with the rest
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    upload = tmp_path / "holiday.jpg"
    Image.new("RGB", (60, 40), "green").save(upload, exif=exif, icc_profile=b"\0" * 128, comment=b"at home",
                                             xmp=b"<x:xmpmeta>secret</x:xmpmeta>", quality=95)
    assert Image.open(upload).getexif().get_ifd(0x8825), "the upload does carry a GPS position"
    log = PredictionLog(tmp_path, MODEL, CLASSES, keep_images=True)
    log.record(upload, prediction())
    log.close()
    [record] = log_lines(tmp_path)
    stored_path = tmp_path / record["image"]
    assert record["image"] == f"images/{record['sha256']}.jpg"
    stored = Image.open(stored_path)
    assert not stored.getexif() and stored.size == (40, 60)
    assert not {"exif", "icc_profile", "xmp", "comment"} & set(stored.info)
    assert b"Canon" not in stored_path.read_bytes() and b"secret" not in stored_path.read_bytes()


def test_reading_skips_cut_lines_other_models_and_older_records(tmp_path: Path, photo: Path) -> None:
    log = PredictionLog(tmp_path, MODEL, CLASSES)
    log.record(photo, prediction())
    log.close()
    [record] = log_lines(tmp_path)
    older = {**record, "time": "2020-01-01T00:00:00.000Z"}
    other = {**record, "model_path": "/models/other"}
    with next(tmp_path.glob("predictions-*.jsonl")).open("a") as file:
        file.write(json.dumps(older) + "\n" + json.dumps(other) + "\n" + json.dumps(record)[:40])

    everything = read_log(tmp_path, MODEL, SMALL_BASELINE)
    recent = read_log(tmp_path, MODEL, SMALL_BASELINE, since=datetime.now(timezone.utc) - timedelta(hours=1))

    assert (everything.count, everything.other_models, everything.unreadable) == (2, 1, 1)
    assert recent.count == 1
    with pytest.raises(FileNotFoundError, match="log folder not found"):
        read_log(tmp_path / "nowhere", MODEL, SMALL_BASELINE)


def test_a_month_of_traffic_counts_into_a_bounded_timeline() -> None:
    timeline, start = Timeline(), datetime(2025, 1, 1, tzinfo=timezone.utc)
    minutes = 60 * 24 * 30
    for minute in range(minutes):
        timeline.add(start + timedelta(minutes=minute, seconds=30))
    assert len(timeline.counts) <= MAX_TIMELINE_BUCKETS
    bars, bucket = timeline.bars()
    assert bucket == timedelta(days=1) and len(bars) == 30
    assert [count for _, count in bars] == [1440] * 30


def test_log_settings_come_from_the_environment() -> None:
    settings = LogSettings.from_environment(
        {"BIRD_LOG_DIR": "/data/log", "BIRD_LOG_IMAGES": "1", "BIRD_LOG_REPO": "me/bird-log", "BIRD_LOG_EVERY": "0.5"}
    )
    assert settings == LogSettings(Path("/data/log"), keep_images=True, repo="me/bird-log", every_minutes=0.5)
    assert LogSettings.from_environment({}) == LogSettings(Path("logs/predictions"), False, None, 5.0)
    with pytest.raises(ValueError, match="BIRD_LOG_EVERY='0' must be a positive number"):
        LogSettings.from_environment({"BIRD_LOG_EVERY": "0"})
    with pytest.raises(ValueError, match="BIRD_LOG_REPO='bird-log' is not a Hub repo id"):
        LogSettings.from_environment({"BIRD_LOG_REPO": "bird-log"})


def test_log_is_mirrored_to_a_private_hub_dataset(fake_hub: FakeHub, tmp_path: Path, photo: Path) -> None:
    settings = LogSettings(tmp_path / "log")
    mirror = start_mirror("tester/bird-log", settings.folder, every_minutes=60, token="hf_write")
    log = PredictionLog(settings.folder, MODEL, CLASSES, mirror=mirror)
    for _ in range(3):
        log.record(photo, prediction())
    log.close()

    [name] = [path.name for path in settings.folder.glob("predictions-*.jsonl")]
    uploaded = fake_hub.files("tester/bird-log", repo_type="dataset")
    assert uploaded[name] == (settings.folder / name).read_bytes()
    assert len(uploaded[name].splitlines()) == 3
    assert HfApi(endpoint=fake_hub.url, token="hf_write").dataset_info("tester/bird-log").private


SMALL_BASELINE = Baseline(
    classes=CLASSES, training_class_counts=[50, 50], validation_count=10,
    confidence_edges=[0, 0.5, 1], validation_confidence_counts=[0, 10],
    low_confidence_threshold=0.5, validation_low_confidence_share=0.0,
    unknown_threshold=1.0, outlier_edges=[0, 1, 2], validation_outlier_counts=[10, 0],
    validation_unknown_share=0.0, expected_unknown_share=0.02,
)


def test_no_alarm_on_too_few_predictions_but_the_headline_says_what_is_off(tmp_path: Path, photo: Path) -> None:
    log = PredictionLog(tmp_path, MODEL, CLASSES)
    for _ in range(MIN_RECORDS - 1):
        log.record(photo, prediction(0.3, unknown=True))
    log.close()
    report = build_report(read_log(tmp_path, MODEL, SMALL_BASELINE), SMALL_BASELINE, "test model")
    text = format_report(report)
    assert report.alarms == []
    assert text.splitlines()[0] == (
        "Too little data to judge yet (49 of 50 predictions); so far: Visitors send more photos of macaw than "
        "training had: 100% vs 50%; 100% of photos look like none of the 2 known classes; expected about 2.0%; "
        "100% of answers are under 50% sure; on validation 0.0%"
    )
    assert "not enough data yet (49 of 50)  100% of photos look like none" in text
    assert "No alarm" not in text and "nan" not in text.lower()


def test_a_shift_leads_with_a_plain_sentence_then_its_statistics() -> None:
    summary = summary_of(SMALL_BASELINE, {"macaw": 85, "gray parrot": 15})
    text = format_report(build_report(summary, SMALL_BASELINE, "test model"))
    lines = text.splitlines()
    assert lines[0].startswith("ALARM (1): Visitors send more photos of macaw than training had: 85% vs 50%")
    finding = lines.index("ALARM  Visitors send more photos of macaw than training had: 85% vs 50%")
    assert lines[finding + 1].lstrip().startswith("class drift: G-test ")


def summary_of(baseline: Baseline, counts: dict[str, int]) -> LogSummary:
    """A log summary of confident, known answers with these class counts, one a minute."""
    summary = LogSummary(baseline.classes, baseline.confidence_edges, baseline.outlier_edges,
                         baseline.low_confidence_threshold)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    labels = itertools.chain.from_iterable(itertools.repeat(name, count) for name, count in counts.items())
    for minute, label in enumerate(labels):
        summary.add({"label": label, "confidence": 0.9, "outlier_score": 0.3, "unknown": False,
                     "time": start + timedelta(minutes=minute)})
    return summary


def test_500_sparse_classes_where_nothing_changed_raise_no_alarm_and_the_report_stays_short() -> None:
    """Issue 11 item 6: 500 unevenly sized classes, 1,500 predictions drawn from the training
    shares (3 per class on average, many classes 0 or 1 times). Compared class by class, PSI
    and JS distance are far over their thresholds by chance alone; the pooled G-test is not.
    The same sample with one class taking a fifth of the answers does alarm."""
    rng = np.random.default_rng(7)
    classes = [f"species {index:03d}" for index in range(500)]
    training = rng.integers(5, 60, size=500)
    baseline = Baseline(
        classes=classes, training_class_counts=training.tolist(), validation_count=500,
        confidence_edges=[0, 0.5, 1], validation_confidence_counts=[0, 500],
        low_confidence_threshold=0.5, validation_low_confidence_share=0.0,
        unknown_threshold=1.0, outlier_edges=[0, 1, 2], validation_outlier_counts=[500, 0],
        validation_unknown_share=0.0, expected_unknown_share=0.002,
    )
    for seed in range(5):
        drawn = np.random.default_rng(seed).multinomial(1500, training / training.sum())
        counts = dict(zip(classes, drawn.tolist()))
        report = build_report(summary_of(baseline, counts), baseline, "500 species")
        old_rule = psi(list(drawn), training.tolist()) > 0.25 or js_distance(list(drawn), training.tolist()) > 0.2
        assert old_rule, "class by class, noise alone would alarm"
        assert report.alarms == [], format_report(report)
    text = format_report(report)
    assert text.splitlines()[0] == "No alarm: the answers look like training and validation"
    assert "rare classes compared as one group" in text
    assert len(text.splitlines()) < 40 and "490 other classes" in text

    shifted = {**counts, "species 123": counts["species 123"] + 375}
    report = build_report(summary_of(baseline, shifted), baseline, "500 species")
    assert [check.name for check in report.alarms] == ["class drift"]
    assert report.headline.startswith("ALARM (1): Visitors send more photos of species 123 than training had: 20%")


def test_many_unknown_answers_raise_their_alarm(tmp_path: Path, photo: Path) -> None:
    log = PredictionLog(tmp_path, MODEL, CLASSES)
    for index in range(MIN_RECORDS):
        log.record(photo, prediction(0.9, unknown=index % 2 == 0))
    log.close()
    report = build_report(read_log(tmp_path, MODEL, SMALL_BASELINE), SMALL_BASELINE, "test model")
    assert "unknown answers" in [check.name for check in report.alarms]


# -- the monitor command on bad input -----------------------------------------------------


def test_monitor_refuses_bad_input_with_status_2(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    no_baseline = tmp_path / "old-model"
    no_baseline.mkdir()
    for item in trained.iterdir():
        if item.name != BASELINE_FILE:
            (no_baseline / item.name).symlink_to(item)
    (tmp_path / "log").mkdir()

    cases = {
        "prediction log folder not found": ["--log-dir", tmp_path / "nowhere", "--model", trained],
        "has no baseline.json": ["--log-dir", tmp_path / "log", "--model", no_baseline],
        "no-model: the folder does not exist": ["--log-dir", tmp_path / "log", "--model", tmp_path / "no-model"],
    }
    for message, args in cases.items():
        assert monitor_main(list(map(str, args))) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        monitor_main(["--log-dir", str(tmp_path / "log"), "--model", str(trained), "--since", "yesterday"])
    assert stopped.value.code == 2 and "'yesterday' is not an ISO 8601 time" in capsys.readouterr().err


def test_monitor_reads_the_apps_settings_and_never_passes_an_empty_log(trained: Path, tmp_path: Path) -> None:
    """As a scheduled job runs it: no options, the app's variables (or its defaults) only."""
    folder = read_model_folder(trained)
    logs = tmp_path / "logs" / "predictions"
    logs.mkdir(parents=True)
    env = {"BIRD_MODEL": str(trained), "BIRD_LOG_DIR": str(logs)}

    empty = run_monitor(env=env)
    assert empty.returncode == 2, empty.stdout + empty.stderr
    assert empty.stderr.strip() == (f"monitor: error: no predictions of this model in {logs}: the app has logged "
                                    "none there yet; is BIRD_LOG_DIR (or --log-dir) the app's?")

    record = {"schema": 1, "model_repo": None, "model_commit": None, "model_path": str(trained.resolve()),
              "label": folder.classes[0], "confidence": 0.9, "probabilities": [0.9, 0.05, 0.03, 0.02],
              "outlier_score": 0.1, "unknown": False}
    now = datetime.now(timezone.utc)
    lines = [{**record, "time": (now - timedelta(minutes=minute)).isoformat()} for minute in range(4)]
    (logs / f"predictions-{now:%Y-%m-%d}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").symlink_to(trained)

    for variables, cwd in ((env, ROOT), ({}, tmp_path)):  # then runs/latest and logs/predictions, as for app.py
        few = run_monitor(env=variables, cwd=cwd)
        assert few.returncode == 0, few.stdout + few.stderr
        assert few.stdout.splitlines()[0].startswith("Too little data to judge yet (4 of 50 predictions)")
        assert "not enough data yet (4 of 50)" in few.stdout and "Predictions: 4 (" in few.stdout
        assert "nan" not in few.stdout.lower() and "No alarm" not in few.stdout and "\nok " not in few.stdout

    elsewhere = run_monitor(env={**env, "BIRD_MODEL": str(tmp_path / "nowhere")})
    assert elsewhere.returncode == 2 and "nowhere: the folder does not exist" in elsewhere.stderr


# -- the simulation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulation:
    model: Path
    log_dir: Path
    answered: tuple[int, int]
    on_disk_while_serving: int
    """Records on disk 1.5 s after phase 1's last answer, the app still running."""
    after_restart: int
    in_distribution: subprocess.CompletedProcess
    shifted: subprocess.CompletedProcess
    plots: Path
    endpoints: list[str]
    mirrored: dict[str, bytes]
    """The dataset repo's files after the second app stopped (it mirrored the log)."""


def other_images(folder: Path) -> list[Path]:
    """Not birds: noise, flat colours, gradients, a fractal; of varied sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    images = [Image.effect_noise((200 + 20 * i, 160), 30 + 10 * i).convert("RGB") for i in range(5)]
    images += [Image.new("RGB", (180, 120), colour) for colour in ("red", "black", "white", "skyblue", "olive")]
    images += [Image.linear_gradient("L").convert("RGB"), Image.radial_gradient("L").convert("RGB")]
    images += [Image.effect_mandelbrot((240, 180), (-2, -1.2, 1, 1.2), 40 + 20 * i).convert("RGB") for i in range(3)]
    paths = [folder / f"other-{index}.png" for index in range(len(images))]
    for image, path in zip(images, paths):
        image.save(path)
    return paths


def shifted_mix(folder: Path, count: int) -> list[Path]:
    """The changed world: photos of one species only, alternating with images of no bird."""
    macaws = sorted((PARROTS / "macaw").iterdir())
    pairs = zip(itertools.cycle(macaws), itertools.cycle(other_images(folder)))
    return list(itertools.islice(itertools.chain.from_iterable(pairs), count))


def call_all(url: str, photos: list[Path], callers: int) -> int:
    """How many calls were answered, from ``callers`` threads at once; a failed call fails the test.

    Each thread has its own client: one ``Client`` shared by threads cancels some of their
    calls (gradio_client 2.7).
    """
    local = threading.local()

    def ask(path: Path) -> dict:
        if not hasattr(local, "client"):
            local.client = Client(url, verbose=False)
        return local.client.predict(handle_file(str(path)), api_name="/predict")[1]

    with ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(ask, photos))
    return sum(1 for details in answers if details["verdict"] in {"known", "unknown"})


@pytest.fixture(scope="module")
def simulation(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    root = tmp_path_factory.mktemp("simulation")
    log_dir = root / "log"
    env = {"BIRD_MODEL": str(trained), "BIRD_LOG_DIR": str(log_dir)}
    parrots = sorted(path for path in PARROTS.rglob("*") if path.is_file())

    with serving(env) as app:
        api = Client(app.url, verbose=False).view_api(return_format="dict", print_info=False)
        endpoints = sorted(api["named_endpoints"])
        first = call_all(app.url, list(itertools.islice(itertools.cycle(parrots), 200)), callers=8)
        on_disk = lines_on_disk(log_dir, 200, timeout=10)
    in_distribution = run_monitor("--log-dir", log_dir, "--model", trained)

    phase_two = datetime.now(timezone.utc)
    with FakeHub() as hub:
        mirror = {**hub_env(hub, root / "hf-home"), "BIRD_LOG_REPO": "tester/bird-log", "BIRD_LOG_EVERY": "60"}
        with serving({**env, **mirror}) as app:
            second = call_all(app.url, shifted_mix(root / "other", 200), callers=16)
        mirrored = hub.files("tester/bird-log", repo_type="dataset")
    after_restart = len(log_lines(log_dir))
    plots = root / "plots"
    shifted_report = run_monitor(
        "--log-dir", log_dir, "--model", trained, "--since", phase_two.isoformat(), "--plots", plots
    )
    return Simulation(trained, log_dir, (first, second), on_disk, after_restart, in_distribution, shifted_report, plots,
                     endpoints, mirrored)


def test_in_distribution_traffic_raises_no_alarm(simulation: Simulation) -> None:
    report = simulation.in_distribution
    print(report.stdout)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "Predictions: 200 (" in report.stdout
    assert report.stdout.startswith("No alarm")
    assert "nan" not in report.stdout.lower()


def test_shifted_traffic_raises_the_drift_alarms(simulation: Simulation) -> None:
    report = simulation.shifted
    print(report.stdout)
    assert report.returncode == 1, report.stdout + report.stderr
    assert "Predictions: 200 (" in report.stdout
    lines = report.stdout.splitlines()
    assert lines[0].startswith("ALARM (")
    statistics = next(index for index, line in enumerate(lines) if line.lstrip().startswith("class drift: G-test"))
    assert re.match(r"ALARM +Visitors send ", lines[statistics - 1]), lines[statistics - 1]
    # Whether the non-bird images also trip "unknown answers" depends on the tiny test model's
    # threshold, which varies from run to run; that alarm's rule has its own unit test above.
    assert sorted(path.name for path in simulation.plots.iterdir()) == [
        "classes.png", "confidence.png", "outlier_score.png", "requests.png"
    ]
    with Image.open(simulation.plots / "classes.png") as picture:
        assert picture.format == "PNG" and picture.width >= 600


def test_every_answered_prediction_is_logged_across_a_restart_and_16_callers(simulation: Simulation) -> None:
    assert simulation.answered == (200, 200)
    assert simulation.on_disk_while_serving == 200
    assert simulation.after_restart == 400
    records = log_lines(simulation.log_dir)
    assert {record["model_path"] for record in records} == {str(simulation.model.resolve())}
    assert all(len(record["probabilities"]) == 4 and len(record["sha256"]) == 64 for record in records)


def test_the_log_reaches_the_mirror_when_the_app_stops(simulation: Simulation) -> None:
    local = {path.name: path.read_bytes() for path in simulation.log_dir.glob("predictions-*.jsonl")}
    assert simulation.mirrored == local


def test_monitoring_tab_shows_the_report_and_adds_no_endpoint(simulation: Simulation) -> None:
    folder = read_model_folder(simulation.model)
    view = Dashboard(simulation.log_dir, ModelIdentity(path=str(folder.path.resolve())), folder, "v")
    summary, plots = view()
    # The tab covers both phases (its last 7 days), so which alarms fire depends on the mix;
    # it must show what the report over the same records says.
    baseline = read_baseline(folder)
    report = build_report(read_log(simulation.log_dir, ModelIdentity(path=str(folder.path.resolve())), baseline),
                          baseline, "v")
    assert summary.splitlines()[0] == f"**{report.headline}**", "the tab and the command say the same"
    assert all(re.search(rf"^ALARM +{re.escape(check.finding)}$", summary, re.M) for check in report.alarms)
    assert "Predictions: 400" in summary
    assert [Path(plot).name for plot in plots] == ["requests.png", "classes.png", "confidence.png", "outlier_score.png"]
    assert view() == (summary, plots), "a refresh within seconds recomputes nothing"
    assert simulation.endpoints == ["/explain", "/feedback", "/info", "/predict", "/predict_batch"], "the API as documented"

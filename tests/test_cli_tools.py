"""The model outside the page: ``bird_model.evaluate`` and ``bird_model.predict`` run as a user runs them.

Nothing here depends on what the tiny test model answers: only on the shape of what the
commands write and on how they treat files and classes they cannot grade.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bird_model.formats import FORMAT_NAMES
from tests.conftest import QUIET_ENV, ROOT, make_dataset, solid_photo


def run_module(module: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **QUIET_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )


def linked_copy(subset: Path, target: Path, per_class: int) -> dict[str, list[Path]]:
    """``per_class`` photos of each class of ``subset``, copied into fresh class folders under ``target``
    (a link leaving the dataset folder would not be read)."""
    linked: dict[str, list[Path]] = {}
    for class_dir in sorted(subset.iterdir()):
        (target / class_dir.name).mkdir(parents=True)
        linked[class_dir.name] = []
        for photo in sorted(class_dir.iterdir())[:per_class]:
            shutil.copyfile(photo, target / class_dir.name / photo.name)
            linked[class_dir.name].append(target / class_dir.name / photo.name)
    return linked


def test_evaluate_grades_a_labelled_folder_and_counts_what_it_cannot_grade(
    trained: Path, parrot_subset: Path, tmp_path: Path
) -> None:
    data = tmp_path / "test set"
    photos = linked_copy(parrot_subset, data, per_class=4)  # reference photos: each trained or validated the model
    classes = sorted(photos)
    solid_photo(data / classes[0] / "never seen.png", (90, 160, 60))
    make_dataset(data, {"snowy owl": (230, 230, 230)}, per_class=2)
    broken = data / classes[0] / "broken.jpg"
    broken.write_bytes(b"not a photo")
    output, picture = tmp_path / "metrics.json", tmp_path / "confusion.png"

    result = run_module("bird_model.evaluate", "--model", trained, "--data", data,
                        "--output", output, "--confusion-matrix", picture)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Grading" in result.stderr  # the progress bar
    report = result.stdout
    written = json.loads(output.read_text())
    seen = written["trained_on"]
    assert seen["photos"] + seen["validation"] == 4 * len(classes) and seen["new"] == 1
    validated = f" ({seen['validation']} of them validated it" if seen["validation"] else ":"
    assert f"{seen['photos']} of these photos trained this model" in report
    assert f"on the other {seen['validation'] + 1}{validated}" in report
    assert report.index("trained this model") < report.index("Accuracy")
    assert "Accuracy" in report and "macro F1" in report and "Unknown:" in report
    for name in classes:
        assert any(line.strip().startswith(name) for line in report.splitlines()), f"no line for {name}"
    assert "Not a class of the model, not graded: snowy owl (2 photos" in report
    assert f"{broken}: The file is not an image in a supported format" in report

    metrics = written["metrics"]
    assert list(metrics["per_class"]) == classes
    assert metrics["count"] == seen["validation"] + 1, "the headline figures leave out the training photos"
    assert sum(scores["support"] for scores in metrics["per_class"].values()) == metrics["count"]
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["count"]
    assert seen["metrics"]["count"] == seen["photos"]
    assert 0 <= written["unknown"] <= metrics["count"]
    assert written["other_classes"]["snowy owl"]["photos"] == 2
    assert [item["path"] for item in written["unreadable"]] == [str(broken)]
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_predict_writes_one_row_per_photo_and_an_error_row(
    trained: Path, parrot_subset: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    photos = [path for paths in linked_copy(parrot_subset, folder / "nested", per_class=2).values() for path in paths]
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG truncated")
    (folder / "notes.txt").write_text("not a photo, and not of a listed format: passed over")
    (folder / ".hidden.jpg").write_bytes(b"hidden files are skipped")
    single = solid_photo(tmp_path / "single.png", (90, 160, 60))

    as_csv = run_module("bird_model.predict", "--model", trained, folder, single)

    assert as_csv.returncode == 1, as_csv.stderr  # an error row makes the exit status 1
    assert "Traceback" not in as_csv.stderr and "Classifying" in as_csv.stderr
    assert f"{len(photos) + 2} files: " in as_csv.stderr and "1 could not be classified" in as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert sorted(row["path"] for row in rows) == sorted(map(str, [*photos, broken, single]))
    by_path = {row["path"]: row for row in rows}
    error = by_path.pop(str(broken))
    assert error["verdict"] == "error" and error["class_1"] == "" and error["score_1"] == ""
    assert error["error"] == f"The file is not an image in a supported format ({FORMAT_NAMES})."
    for row in by_path.values():
        assert row["verdict"] in {"known", "unknown"} and row["error"] == ""
        scores = [float(row[f"score_{rank}"]) for rank in (1, 2, 3)]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= score <= 1.0 for score in scores)
        assert all(len(row[f"score_{rank}"].partition(".")[2]) <= 4 for rank in (1, 2, 3))  # rounded
        assert len({row["class_1"], row["class_2"], row["class_3"]}) == 3

    output = tmp_path / "answers.jsonl"
    as_jsonl = run_module("bird_model.predict", "--model", trained, "--format", "jsonl", "--top-k", "2",
                          "--output", output, single)
    assert as_jsonl.returncode == 0, as_jsonl.stderr
    assert as_jsonl.stdout == ""
    (line,) = [json.loads(text) for text in output.read_text().splitlines()]
    assert line["path"] == str(single) and line["verdict"] in {"known", "unknown"}
    assert [set(item) for item in line["top"]] == [{"class", "score"}] * 2


def test_a_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "missing"
    photo = solid_photo(tmp_path / "data" / "macaw" / "1.png", (200, 40, 40))
    for command in (("bird_model.predict", "--model", missing, photo),
                    ("bird_model.evaluate", "--model", missing, "--data", tmp_path / "data")):
        result = run_module(*command)
        assert result.returncode == 2
        assert result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"python -m {command[0]}: error: ") and str(missing) in line

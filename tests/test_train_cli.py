"""train.py as a user runs it: a complete model folder, or a clear refusal and nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from bird_model.artifacts import read_model_folder
from bird_model.evaluation import Metrics
from tests.conftest import TINY, TRAIN_TINY, make_dataset, run_here, run_script

FAST = (*TRAIN_TINY, "--fine-tune-epochs", "1")  # phase 2 too: the folder must record both phases


def test_training_writes_a_complete_model_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    names_table = tmp_path / "names.csv"  # as a spreadsheet saves it: a byte-order mark, an empty cell
    names_table.write_text("\ufeffclass,id,en\r\nred bird,Burung merah,\r\n", encoding="utf-8")
    others = make_dataset(tmp_path / "others", {"green": (0, 200, 0), "grey": (90, 90, 90)}, per_class=2)
    (others / "green" / "notes.jpg").write_text("not a photo")
    # TensorFlow's C++ log level as a user has it (unset), not the test suite's quiet one.
    result = run_script("train.py", "--data", tiny_dataset, "--output", output, *TINY, "--fine-tune-epochs", "1",
                        "--license", "cc-by-4.0",
                        "--class-names-file", names_table, "--outlier-photos", others, env={"TF_CPP_MIN_LOG_LEVEL": ""})
    assert result.returncode == 0, result.stderr
    assert "Dataset: 12 usable photos in 2 classes" in result.stdout
    assert f"Outlier photos: 4 from {others} (1 unreadable: skipped)" in result.stdout
    assert "Validation accuracy" in result.stdout
    assert "Devices: one device (TensorFlow's default strategy), 1 replica(s), precision float32" in result.stdout
    printed = result.stdout + result.stderr
    assert not re.search(r"^(\d{4}-\d\d-\d\d \d\d:.*\] |[IWE]0000 |WARNING: All log messages before absl)", printed,
                         re.MULTILINE), f"TensorFlow's C++ log reached the user:\n{printed}"
    assert "fully_quantize" not in printed, "the 8-bit calibrator's summary reached the user"
    assert "XNNPACK" not in printed, "LiteRT's delegate line reached the user"
    for silent_step in ("Computing the frozen base's features of 12 photos, once",
                        "Evaluating on 10 training and 2 validation photos", "Calibrating the unknown-photo threshold",
                        "converting it to LiteRT", "Choosing the served model.tflite", "Writing the model folder"):
        assert silent_step in result.stdout

    folder = read_model_folder(output)
    assert folder.classes == ["blue bird", "red bird"]
    names = {p.name for p in output.iterdir()}
    assert {"config.json", "model.weights.h5", "metadata.json", "model.tflite", "labels.json", "run_config.json",
            "metrics.json", "history.json", "README.md",
            "confusion_matrix.png", "training_curves.png", "dataset_report.json", "split.json", "examples"} <= names
    assert [p.name for p in folder.examples()] == ["blue_bird.jpg", "red_bird.jpg"]
    assert json.loads((output / "labels.id.json").read_text()) == ["blue bird", "Burung merah"]
    assert json.loads((output / "labels.en.json").read_text()) == ["blue bird", "red bird"]
    assert folder.config["image_size"] == 32 and folder.config["base_weights"] == "none"
    assert folder.config["dataset"]["split_counts"]["validation"] == {"blue bird": 1, "red bird": 1}
    split = json.loads((output / "split.json").read_text())
    assert len(split["train"]) == 10 and all(len(row["sha256"]) == 64 for row in split["validation"])
    card = ModelCard.load(output / "README.md")
    assert (card.data.library_name, card.data.pipeline_tag) == ("keras", "image-classification")
    assert (card.data.model_name, card.data.license, card.data.base_model) == ("birds-classifier", "cc-by-4.0", None)
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", card.text)
    assert pictures == ["confusion_matrix.png", "training_curves.png"]
    for picture in pictures:
        assert Image.open(output / picture).size > (100, 100), picture
    written = json.loads((output / "metrics.json").read_text())
    assert set(written["validation"]) >= {"accuracy", "per_class", "confusion_matrix", "mean_confidence_correct"}
    assert Metrics.from_json(written).to_json() == written and folder.metrics == Metrics.from_json(written)
    variants = {variant.name: variant for variant in folder.metrics.serving_variants}
    assert list(variants) == ["float32", "dynamic-range", "full-integer"] and sum(v.served for v in variants.values()) == 1
    served = next(name for name, variant in variants.items() if variant.served)
    caught = variants[served].own_outliers_unknown
    assert {variant.own_outliers for variant in variants.values()} == {4} and 0 <= caught <= 4
    assert f"and {caught} of the 4 photos of other things the trainer gave (`--outlier-photos`)" in " ".join(card.text.split())
    assert str(others) not in (output / "README.md").read_text() + (output / "run_config.json").read_text()
    assert "model.tflite" in names and not list(output.glob("model-*-*.tflite"))
    assert ("model-float32.tflite" in names) == (served != "float32"), "float32 kept once, beside an 8-bit model"
    assert not list(tmp_path.glob(".run.partial-*")), "staging folder left behind"


@pytest.mark.parametrize(("table", "says"), [
    ("class,id\nred bird,Burung merah\nred bird,Merah\n", "line 3: 'red bird' is listed twice"),
    ("class,id\ngreen bird,Burung hijau\n", "line 2: 'green bird' is not a class of this dataset"),
    ("kelas,id\n", "the first line must be 'class' and language codes"),
    ("class,Bahasa Indonesia\n", "language codes such as id or en, not 'bahasa indonesia'"),
])
def test_a_wrong_class_names_table_stops_before_training(tiny_dataset: Path, tmp_path: Path, table: str,
                                                         says: str) -> None:
    (tmp_path / "names.csv").write_text(table, encoding="utf-8")
    result = run_here("train.py", "--data", tiny_dataset, "--output", tmp_path / "run", *FAST,
                      "--class-names-file", tmp_path / "names.csv")
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert "Phase 1" not in result.stdout and not (tmp_path / "run").exists()


def test_an_outlier_photos_folder_without_a_photo_stops_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "others").mkdir()
    (tmp_path / "others" / "notes.jpg").write_text("not a photo")
    result = run_here("train.py", "--data", tiny_dataset, "--output", tmp_path / "run", *FAST,
                      "--outlier-photos", tmp_path / "others")
    assert result.returncode == 2
    assert f"--outlier-photos {tmp_path / 'others'}: no photo in it could be read" in result.stderr
    assert "Phase 1" not in result.stdout and not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten_without_asking(tiny_dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    output.mkdir()
    (output / "model.weights.h5").write_text("an earlier model")
    result = run_here("train.py", "--data", tiny_dataset, "--output", output, *FAST)
    assert result.returncode == 2
    assert "already holds another run" in result.stderr and "--overwrite" in result.stderr
    assert (output / "model.weights.h5").read_text() == "an earlier model"


@pytest.mark.parametrize(
    ("classes", "message"),
    [({}, "holds no images"), ({"red": (200, 0, 0)}, "Only one class (red) found")],
)
def test_untrainable_data_is_refused_quickly(tmp_path: Path, classes: dict, message: str) -> None:
    data = make_dataset(tmp_path / "d", classes, per_class=3) if classes else tmp_path / "d"
    data.mkdir(exist_ok=True)
    result = run_here("train.py", "--data", data, "--output", tmp_path / "run", *FAST)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_weights_file_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    result = run_here("train.py", "--data", tiny_dataset, "--output", tmp_path / "run", "--base-weights", "nope.h5")
    assert result.returncode == 2
    assert "--base-weights nope.h5: no such file" in result.stderr


def test_unreachable_imagenet_weights_say_how_to_train_offline(tiny_dataset: Path, tmp_path: Path) -> None:
    """The default weights where they cannot be downloaded: one line naming --base-weights, no traceback.

    An empty KERAS_HOME keeps a cached copy from answering; the proxy at a closed local port
    refuses the download at once, with or without internet.
    """
    env = {"KERAS_HOME": str(tmp_path / "keras"), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_script("train.py", "--data", tiny_dataset, "--output", tmp_path / "run", "--epochs", "1",
                        "--fine-tune-epochs", "0", "--image-size", "32", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("train.py: error:")]
    assert "ImageNet weights" in line and "--base-weights PATH" in line and "--base-weights none" in line
    assert "Dataset:" not in result.stdout, "the weights are checked before the photos"
    assert not (tmp_path / "run").exists()

"""app.py as a real process, called through gradio_client as API users call it."""

from __future__ import annotations

import json
import shutil
import string
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from bird_model.artifacts import ModelFolderError, read_model_folder
from bird_model.data import load_dataset
from bird_model.images import ImageError, load_rgb
from bird_model.web import unknown_verdict
from bird_model.web.text import TEXT, say_refusal
from tests.conftest import RunningApp, app_in_process, hub_env, run_here, run_script, serving
from tests.fakehub import FakeHub


@pytest.fixture(scope="module")
def app(trained: Path) -> Iterator[RunningApp]:
    with serving({"BIRD_MODEL": str(trained)}) as running:
        yield running


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input a public demo gets, with the message its caller must see."""
    folder.mkdir(exist_ok=True)
    text = folder / "notes.jpg"
    text.write_text("not a photo at all")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    full = folder / "full.jpg"
    Image.effect_noise((300, 300), 60).convert("RGB").save(full)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:3000])
    tiny = folder / "tiny.png"
    Image.new("RGB", (5, 5), "green").save(tiny)
    bomb = folder / "bomb.png"
    Image.new("L", (7500, 7500)).save(bomb, optimize=True)
    return {
        "not an image": (text, "not an image in a supported format"),
        "empty file": (empty, "The file is empty."),
        "truncated": (truncated, "corrupt or truncated"),
        "too small": (tiny, "too small: 5x5 pixels"),
        "decompression bomb": (bomb, "too large: 7500x7500 pixels"),
    }


def predict(client: Client, photo: Path) -> tuple[dict, dict]:
    return client.predict(handle_file(str(photo)), api_name="/predict")


def test_good_photo_bad_photos_then_good_photo_again(client: Client, trained: Path, tmp_path: Path) -> None:
    folder = read_model_folder(trained)
    photo = folder.examples()[0]

    first = predict(client, photo)
    label, details = first
    assert details["label"] in folder.classes
    # Known or unknown depends on how the tiny test model's threshold fell this run; the
    # headline follows the verdict either way.
    verdict = details["label"] if details["verdict"] == "known" else unknown_verdict(len(folder.classes))
    assert label["label"] == verdict
    assert label["confidences"][0]["label"] == details["label"]
    assert len(label["confidences"]) == 3
    assert sum(c["confidence"] for c in label["confidences"]) <= 1.0 + 1e-6

    for name, (path, message) in bad_files(tmp_path).items():
        with pytest.raises(AppError) as raised:
            predict(client, path)
        assert message in str(raised.value), f"{name}: got {raised.value}"

    assert predict(client, photo) == first


def test_odd_formats_are_classified(client: Client, trained: Path, tmp_path: Path) -> None:
    photo = read_model_folder(trained).examples()[0]
    with Image.open(photo) as image:
        variants = {
            "gray.png": image.convert("L"),
            "rgba.png": image.convert("RGBA"),
            "palette.gif": image.convert("P"),
            "cmyk.jpg": image.convert("CMYK"),
            "photo.webp": image,
        }
        for name, variant in variants.items():
            variant.save(tmp_path / name)
    for name in variants:
        assert predict(client, tmp_path / name)[1]["label"] in read_model_folder(trained).classes, name


def test_page_describes_the_model(app: RunningApp, trained: Path) -> None:
    config = Client(app.url, verbose=False).view_api(return_format="dict", print_info=False)
    assert "/predict" in config["named_endpoints"]
    page = urllib.request.urlopen(app.url + "config").read().decode()
    for name in read_model_folder(trained).classes:
        assert name in page
    assert "Validation accuracy" in page and "What this model knows, and its limits" in page


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def file_paths(config: object) -> list[str]:
    """Every file path the page's config names (examples, mostly)."""
    if isinstance(config, dict):
        own = [config["path"]] if isinstance(config.get("path"), str) else []
        return own + [path for value in config.values() for path in file_paths(value)]
    if isinstance(config, list):
        return [path for value in config for path in file_paths(value)]
    return []


def test_answers_and_example_photos_are_served_and_nothing_else(app: RunningApp, trained: Path) -> None:
    """The model folder is not downloadable (a private model behind a public demo would leak its
    weights), nor is the prediction log; the page names the model, never a local path."""
    served = app.url + "gradio_api/file="
    for name in ("model.weights.h5", "model.tflite", "model-float32.tflite", "ood.npz", "config.json", "run_config.json",
                 "split.json", "dataset_report.json", "examples/../run_config.json"):
        for path in (f"{trained}/{name}", f"{trained.resolve()}/{name}"):
            assert status_of(served + path) == 403, path

    text = urllib.request.urlopen(app.url + "config").read().decode()
    assert str(trained) not in text and str(trained.resolve()) not in text and str(Path.home()) not in text
    examples = [path for path in file_paths(json.loads(text)) if Path(path).suffix == ".jpg"]
    assert len(examples) == len(read_model_folder(trained).examples())
    assert all(status_of(served + path) == 200 for path in examples)


def test_monitoring_is_off_unless_the_operator_turns_it_on(app: RunningApp, trained: Path, tmp_path: Path) -> None:
    page = urllib.request.urlopen(app.url + "config").read().decode()
    assert "Monitoring" not in page
    operator_env = {"BIRD_MODEL": str(trained), "BIRD_MONITORING": "1", "BIRD_LOG_DIR": str(tmp_path / "log")}
    with app_in_process(operator_env) as operator:
        assert "Monitoring" in urllib.request.urlopen(operator + "config").read().decode()
        api = Client(operator, verbose=False).view_api(return_format="dict", print_info=False)
        assert sorted(api["named_endpoints"]) == ["/explain", "/feedback", "/info", "/predict", "/predict_batch"]  # none from the tab


def test_any_upload_name_is_logged_under_its_content_hash(trained: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A name too long for the disk once prefixed, or one ending in .html, must neither lose the
    record nor choose what is stored: images are named by hash and decoded format."""
    photo = read_model_folder(trained).examples()[0]
    long_name = tmp_path / ("a." + "b" * 250)
    html = tmp_path / "page.html"
    Image.open(photo).save(long_name, "PNG")
    Image.open(photo).save(html, "PNG")
    log_dir = tmp_path / "log"
    with app_in_process({"BIRD_MODEL": str(trained), "BIRD_LOG_DIR": str(log_dir), "BIRD_LOG_IMAGES": "1"}) as url:
        client = Client(url, verbose=False)
        for upload in (long_name, html):
            predict(client, upload)
        deadline = time.monotonic() + 10
        while len(records := _log_records(log_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "records are being lost" not in capsys.readouterr().out
    assert [record["image"] for record in records] == [f"images/{record['sha256']}.png" for record in records]
    assert sorted(path.suffix for path in (log_dir / "images").iterdir()) == [".png"]


def _log_records(folder: Path) -> list[dict]:
    text = "".join(path.read_text() for path in sorted(folder.glob("predictions-*.jsonl")))
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def test_serving_decodes_exactly_as_training_did(trained: Path, parrot_subset: Path) -> None:
    """Preprocessing parity: a photo's pixels, and so its scores, match between both paths."""
    from bird_model.inference import Classifier
    from bird_model.inputs import Photos

    folder = read_model_folder(trained)
    classifier = Classifier(folder)
    dataset = load_dataset([parrot_subset], folder.image_size, show_progress=False)
    everything = list(range(len(dataset.samples)))
    streamed = np.concatenate([pixels.numpy() for pixels in Photos.of(dataset, everything).batches(8, with_labels=False)])
    for index, sample in enumerate(dataset.samples):
        np.testing.assert_array_equal(load_rgb(sample.path, folder.image_size), streamed[index])
    webp = next(i for i, s in enumerate(dataset.samples) if s.path.suffix == ".webp")
    trained_on = classifier.forward(streamed[webp : webp + 1].astype(np.uint8)).probabilities
    served = classifier.classify(dataset.samples[webp].path).scores
    np.testing.assert_allclose([served[name] for name in folder.classes], trained_on[0], atol=1e-6)


def test_label_map_that_does_not_fit_the_model_stops_the_start(trained: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in trained.iterdir():
        if item.is_file():
            (broken / item.name).symlink_to(item)
    classes = read_model_folder(trained).classes + ["dodo"]
    for name, update in (("labels.json", None), ("run_config.json", "classes")):
        (broken / name).unlink()
        data = json.loads((trained / name).read_text())
        if update:
            data[update] = classes
        else:
            data = {"id2label": {str(i): c for i, c in enumerate(classes)}}
        (broken / name).write_text(json.dumps(data))
    result = run_here("app.py", "--model", broken)
    assert result.returncode == 2
    assert "predicts 4 classes but" in result.stderr and "names 5" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("image_size", [100_000, 8, "224", None])
def test_a_downloaded_folder_with_an_impossible_image_size_is_refused(
    tiny_model: Path, tmp_path: Path, image_size: object
) -> None:
    """A model folder may be a stranger's download: an input size the model cannot have (or one that
    would make the server allocate gigabytes per photo) stops the start with one line."""
    folder = Path(shutil.copytree(tiny_model, tmp_path / "folder"))
    config = json.loads((folder / "run_config.json").read_text())
    (folder / "run_config.json").write_text(json.dumps({**config, "image_size": image_size}))

    with pytest.raises(ModelFolderError, match=r"has image_size .*; expected a whole number of pixels from 32 to 1024"):
        read_model_folder(folder)


@pytest.mark.parametrize(("change", "says"), [
    ({"dataset": []}, "has dataset.split_counts.train inside something that is not a JSON object"),
    ({"dataset": {"split_counts": {"train": {"macaw": "many"}}}}, "counts that are not whole numbers"),
    ({"model_name": {"html": "<script>"}}, "has model_name {'html': '<script>'}; expected a text"),
    ({"base_weights": "w" * 300}, "expected a text of at most 200 characters"),
])
def test_a_downloaded_folder_whose_run_config_facts_are_not_what_they_say_is_refused(
    tiny_model: Path, tmp_path: Path, change: dict, says: str
) -> None:
    """What the page shows of the run (name, date, base weights, training photos) is checked when
    the folder is read: a stranger's run config stops the start with one line, not a traceback."""
    folder = Path(shutil.copytree(tiny_model, tmp_path / "folder"))
    config = json.loads((folder / "run_config.json").read_text())
    (folder / "run_config.json").write_text(json.dumps({**config, **change}))

    result = run_here("app.py", "--model", folder)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert says in line, line


def test_a_folder_without_the_newer_facts_is_served_with_their_defaults(tiny_model: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_model, tmp_path / "folder"))
    config = json.loads((folder / "run_config.json").read_text())
    for key in ("model_name", "created_at", "dataset"):
        config.pop(key)
    (folder / "run_config.json").write_text(json.dumps({**config, "base_weights": "none"}))
    facts = read_model_folder(folder).facts
    assert (facts.model_name, facts.created_at, facts.base_weights, facts.training_photos) == ("model", "?", None, 0)


def test_metadata_files_larger_than_any_run_writes_are_not_read(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bird_model import artifacts

    monkeypatch.setattr(artifacts, "MAX_JSON_BYTES", (tiny_model / "metrics.json").stat().st_size - 1)
    with pytest.raises(ModelFolderError, match=r"metrics.json is larger than a model folder's metadata can be"):
        read_model_folder(tiny_model)


def test_a_folder_whose_model_takes_another_size_stops_the_start_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_model, tmp_path / "folder"))
    config = json.loads((folder / "run_config.json").read_text())
    (folder / "run_config.json").write_text(json.dumps({**config, "image_size": 64}))  # the model takes 32

    result = run_here("app.py", "--model", folder)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "takes 32x32 photos but the folder's run config says image_size 64" in line, line


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    """A path says the folder is missing; OWNER/NAME is also a relative path, so both readings are named."""
    result = run_here("app.py", "--model", tmp_path / "nowhere")
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere'}: the folder does not exist (and it is not a Hub repo id" in result.stderr
    with FakeHub() as hub:
        result = run_script("app.py", env={**hub_env(hub, tmp_path / "home"), "BIRD_MODEL": "runs/missing"}, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("app.py: error: runs/missing: the folder does not exist, and it is not available from "
                           "the Hub (downloading runs/missing at revision 'main' failed: the repo does not exist"), line


def test_photo_of_something_else_scores_as_an_outlier(client: Client, trained: Path, tmp_path: Path) -> None:
    """Noise lies farther from the training classes than the bird photos do on average (the tiny
    test model's threshold varies per run; benchmarks/ood.py measures the verdict on a full model)."""
    noise = tmp_path / "noise.png"
    Image.effect_noise((300, 300), 80).convert("RGB").save(noise)
    _, details = predict(client, noise)
    birds = [predict(client, photo)[1]["outlier_score"] for photo in read_model_folder(trained).examples()]
    assert details["outlier_score"] > sum(birds) / len(birds)


def test_unknown_verdict_heads_the_label_and_keeps_the_scores() -> None:
    from bird_model.inference import Prediction
    from bird_model.web import answer

    scores = {"macaw": 0.6000000238418579, "gray parrot": 0.29999998211860657, "white parrot": 0.1}
    label, details = answer(Prediction(scores, outlier_score=2.0000123456, unknown=True), 2, "Not a bird I know", "v")
    assert label == {"label": "Not a bird I know",
                     "confidences": [{"label": "macaw", "confidence": 0.6}, {"label": "gray parrot", "confidence": 0.3}]}
    assert details == {"verdict": "unknown", "label": "macaw", "confidence": 0.6, "outlier_score": 2.0, "model": "v"}


def test_api_contract(client: Client, trained: Path) -> None:
    """The shape README.md documents; a Gradio upgrade that changes it must fail here."""
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/predict"]
    assert [parameter["component"] for parameter in endpoint["parameters"]] == ["Image"]
    assert [value["component"] for value in endpoint["returns"]] == ["Label", "Json"]
    label, details = predict(client, read_model_folder(trained).examples()[0])
    assert set(label) == {"label", "confidences"}
    assert all(set(item) == {"label", "confidence"} for item in label["confidences"])
    assert set(details) == {"verdict", "label", "confidence", "outlier_score", "model"}
    assert details["verdict"] in {"known", "unknown"}
    assert isinstance(details["confidence"], float) and isinstance(details["outlier_score"], float)
    config = read_model_folder(trained).config
    assert details["model"] == f"{config['model_name']} (local, trained {config['created_at'][:10]})"


def test_share_without_internet_logs_one_line_and_serves_locally(trained: Path) -> None:
    """``--share`` where gradio.live cannot be reached: a clear line, and the app still answers.

    Gradio's share link takes two HTTPS requests (api.gradio.app for a tunnel server, then
    its frpc binary from a CDN). ``https_proxy`` at a closed local port refuses both at once
    on any machine: without internet they fail in about 0.2 s anyway, but a machine with
    internet would get a real public link, and one whose firewall drops packets would wait
    out Gradio's 30 s timeouts. (Lowercase, because it wins over ``HTTPS_PROXY``.)
    ``PYTHONUNBUFFERED``: app.py's line reaches the log while the app runs.
    """
    env = {"BIRD_MODEL": str(trained), "https_proxy": "http://127.0.0.1:9", "PYTHONUNBUFFERED": "1"}
    with serving(env, "--share") as running:
        log = log_once_it_says(running, "Share link unavailable")
        _, details = predict(Client(running.url, verbose=False), read_model_folder(trained).examples()[0])
        assert details["label"] in read_model_folder(trained).classes
    assert log.count("Share link unavailable") == 1, log
    assert f"still serving locally at {running.url}" in log


def log_once_it_says(app: RunningApp, text: str, timeout: float = 30) -> str:
    """The app's log once ``text`` is in it: the page answers before ``launch()`` returns and app.py prints."""
    deadline = time.monotonic() + timeout
    while text not in (log := app.log()):
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s:\n{log}"
        time.sleep(0.2)
    return log


def test_explain_returns_the_overlay_and_a_missing_photo_is_one_line(
    client: Client, app: RunningApp, trained: Path
) -> None:
    """``/explain`` answers with an image of the photo at model size (its content is a tiny test
    model's); a call without a photo gets the page's message, and the server logs no traceback."""
    folder = read_model_folder(trained)
    overlay = client.predict(handle_file(str(folder.examples()[0])), api_name="/explain")
    with Image.open(overlay) as image:
        image.load()
        assert image.size == (folder.image_size, folder.image_size)
    for endpoint in ("/predict", "/explain"):
        with pytest.raises(AppError, match="No photo received"):
            client.predict(None, api_name=endpoint)
    assert "Traceback" not in app.log()


def test_a_page_for_500_classes_stays_readable(trained: Path, tmp_path: Path) -> None:
    """Built in-process for a stand-in of 500 species (no model runs): the headline names a few
    classes and a count, the limits note folds the full list away, and feedback is two buttons
    and a dropdown of every class instead of 502 buttons."""
    import dataclasses

    import gradio as gr

    from bird_model.feedback import FeedbackStore
    from bird_model.monitoring import ModelIdentity
    from bird_model.settings import FeedbackSettings
    from bird_model.web import About, Words, build_demo

    classes = [f"species {index:03d}" for index in range(500)]
    folder = dataclasses.replace(read_model_folder(trained), classes=classes)

    @dataclasses.dataclass
    class ManyClasses:
        folder: object
        classes: list[str]
        explains: bool = True
        detector: object = None

    classifier = ManyClasses(folder, classes)
    store = FeedbackStore(tmp_path / "log", ModelIdentity(path="/m"), classes, FeedbackSettings())
    words = Words()
    demo = build_demo(classifier, 5, About("m", None, None, "m (local)"), feedback=store, words=words)
    english = words.i18n().translations_dict["en"]

    def text(value: object) -> str:
        """A component's text as an English-speaking browser shows it."""
        shown = str(value)
        return english.get(json.loads(shown.removeprefix("__i18n__"))["key"], shown) if shown.startswith("__i18n__") \
            else shown

    markdown = [text(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    description = next(value for value in markdown if "Upload a photo" in value)
    assert "500 birds" in description and "species 499" not in description
    buttons = [text(block.value) for block in demo.blocks.values() if isinstance(block, gr.Button)]
    assert not any(label.startswith("It is:") for label in buttons), buttons
    assert {"Right", "None of these", "Send: it is this bird"} <= set(buttons)
    dropdown = next(block for block in demo.blocks.values() if isinstance(block, gr.Dropdown))
    assert [choice[0] for choice in dropdown.choices] == classes
    assert any("<details>" in value for value in markdown)


def test_several_photos_at_once_and_which_model_through_the_api(tiny_model: Path, tmp_path: Path) -> None:
    """``/predict_batch`` answers one row per photo (a bad one in its own row), in the caller's
    language with the model's display names; ``/info`` says which model; ``/predict`` keeps its shape."""
    import shutil

    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    classes = read_model_folder(model).classes
    (model / "labels.id.json").write_text(json.dumps([f"burung {index}" for index in range(len(classes))]))
    photos = [str(path) for path in read_model_folder(model).examples()]
    (tmp_path / "notes.jpg").write_text("not a photo")
    with app_in_process({"BIRD_LOG_DIR": str(tmp_path / "log")}, "--model", str(model)) as url:
        indonesian = Client(url, verbose=False, headers={"Accept-Language": "id-ID,id;q=0.9"})
        table, csv_file = indonesian.predict([handle_file(p) for p in [*photos, str(tmp_path / "notes.jpg")]],
                                             api_name="/predict_batch")
        assert [row[0] for row in table["data"]] == [*(Path(p).name for p in photos), "notes.jpg"]
        assert {row[2] for row in table["data"][:2]} <= {f"burung {index}" for index in range(len(classes))}
        assert not table["data"][2][2], "the bad photo's problem, in its own row"
        assert table["data"][2][4].startswith("Berkas ini bukan gambar dalam format yang didukung"), table["data"][2][4]
        assert Path(csv_file).read_text(encoding="utf-8").count("\n") == 4

        client = Client(url, verbose=False)
        info = client.predict(api_name="/info")
        assert set(info) == {"model", "revision", "tag", "classes", "languages", "unknown_threshold"}
        assert info["classes"] == classes and info["languages"] == ["en", "id"]
        label, details = client.predict(handle_file(photos[0]), api_name="/predict")
        assert label["label"] in [*classes, unknown_verdict(len(classes))]
        assert {c["label"] for c in label["confidences"]} <= set(classes)
        assert {"model", "verdict", "outlier_score"} <= set(details)


def test_every_refused_file_is_said_in_indonesian_with_the_same_values() -> None:
    """The page says the decoder's refusals in the visitor's language: one template per reason, the same values."""
    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for reason, english in ImageError.REFUSALS.items():
        assert fields(TEXT["id"][f"refused_{reason}"]) == fields(english), reason
    refused = ImageError("too_small", width=4, height=3, side=8)
    assert str(refused) == say_refusal(refused, "en") == "The image is too small: 4x3 pixels; at least 8x8 is needed."
    assert say_refusal(refused, "id") == "Gambar terlalu kecil: 4x3 piksel; paling sedikit 8x8 diperlukan."

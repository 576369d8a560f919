"""The model card as a Hub visitor reads it: valid metadata, honest base weights, readable with
500 classes, and a usage snippet that decodes a photo exactly as training does."""

from __future__ import annotations

import ast
import dataclasses
import io
import re

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from bird_model.card import IMAGENET_BASE_MODEL, render_model_card
from bird_model.evaluation import Metrics, OutlierMetrics, ServingVariant, classification_metrics
from bird_model.images import load_rgb
from bird_model.ood import METHOD
from tests.hub_spec import model_card_problems


def card_for(classes: int, base_weights: str = "imagenet", sources: list[dict] | None = None, **measured: object) -> ModelCard:
    """A card rendered (and parsed back, as the Hub does) for a synthetic run of ``classes`` classes."""
    names = [f"Species number {index:03d}" for index in range(classes)]
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), 3)
    probabilities = rng.dirichlet(np.ones(classes), size=len(labels))
    probabilities[np.arange(len(labels)), labels] += 1.0
    split = classification_metrics(labels, probabilities / probabilities.sum(axis=1, keepdims=True), names)
    config = {
        "model_name": "synthetic-classifier", "license": "cc-by-4.0", "classes": names, "image_size": 224,
        "base_weights": base_weights, "training": {"fine_tune_fraction": 0.3},
        "versions": {"tensorflow": "2.x", "keras": "3.x"},
        "dataset": {
            "sources": sources or [{"spec": "photos", "type": "local", "name": "photos", "subfolder": "."}],
            "fingerprint": "0" * 64, "usable": 12 * classes, "rejected": 0,
            "split_counts": {"train": dict.fromkeys(names, 9), "validation": dict.fromkeys(names, 3)},
        },
    }
    text = str(render_model_card(config, Metrics(validation=split, training=split, **measured)))
    return ModelCard(text)


def table_rows(markdown: str) -> int:
    return len(re.findall(r"^\| Species number", markdown, re.MULTILINE))


HUB_SOURCE = {"spec": "hf:someone/birds", "type": "hf", "repo_id": "someone/birds", "revision": "main",
              "commit": "a" * 40, "subfolder": "."}


def test_metadata_is_hub_valid_and_names_what_the_model_came_from() -> None:
    card = card_for(4, sources=[HUB_SOURCE])
    data = card.data
    assert data.base_model == IMAGENET_BASE_MODEL and data.license == "cc-by-4.0"
    assert data.datasets == ["someone/birds"] and data.pipeline_tag == "image-classification"
    assert data.library_name == "keras" and data.model_name == "synthetic-classifier"
    assert [(result.metric_type, result.dataset_type) for result in data.eval_results] == [
        ("accuracy", "someone/birds"), ("f1", "someone/birds")]
    assert 'load_model("hf://OWNER/NAME")' in card.text
    assert "(confusion_matrix.png)" in card.text and "(training_curves.png)" in card.text
    assert table_rows(card.text) == 4 and "<details>" not in card.text

    stand_in = card_for(4, base_weights="mobilenet_v2.weights.h5")
    assert stand_in.data.base_model is None and stand_in.data.datasets is None
    assert "not a published checkpoint" in stand_in.text
    assert card_for(4, base_weights="none").data.base_model is None


def test_a_500_class_card_shows_the_weakest_classes_and_folds_the_rest() -> None:
    text = card_for(500).text
    before, folded = text.split("<details>", 1)
    assert table_rows(before) == 10, "only the weakest classes before the fold"
    assert table_rows(folded) == 500 and "</details>" in folded
    assert "metrics.json" in before


def snippet_decoder():
    """``load_photo`` as the card's usage snippet defines it (imports and definitions only, no download)."""
    block = re.search(r"```python\n(.*?)```", card_for(2).text, re.DOTALL).group(1)
    tree = ast.parse(block)
    tree.body = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    namespace: dict = {}
    exec(compile(tree, "card-snippet", "exec"), namespace)
    return namespace["load_photo"]


def encoded(image: Image.Image, format_: str, **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format_, **options)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("orientation", [6, 3])
def test_the_card_snippet_decodes_exactly_like_training(orientation: int) -> None:
    load_photo = snippet_decoder()
    rng = np.random.default_rng(orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    noise = rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8)
    gradient = np.linspace(0, 255, 1300, dtype=np.uint8)[None, :, None].repeat(900, 0).repeat(3, 2)
    photos = [
        # A large camera photo with a rotation: decoded at reduced scale, shrunk, then rotated.
        encoded(Image.fromarray(gradient // 2 + noise // 2), "JPEG", exif=exif, quality=90),
        # A small rotated one: no shrinking, only rotation and resizing.
        encoded(Image.fromarray(noise[:300, :400]), "JPEG", exif=exif),
        # Transparency composited onto white.
        encoded(Image.fromarray(np.dstack([noise[:500, :600], noise[:500, :600, :1]]), "RGBA"), "PNG"),
    ]
    for photo in photos:
        expected = load_rgb(photo, 224)
        photo.seek(0)
        assert np.array_equal(load_photo(photo), expected)


def test_the_card_says_which_conversion_is_served_and_how_each_measured() -> None:
    variants = [
        ServingVariant("float32", 8_930_000, 0.975, 9.5, 20, 20, qualifies=True, served=False),
        ServingVariant("dynamic-range", 2_550_000, 0.975, 27.1, 20, 20, qualifies=True, served=False),
        ServingVariant("full-integer", 2_760_000, 0.95, 4.7, 19, 20, qualifies=False, served=False),
    ]
    variants[1] = dataclasses.replace(variants[1], served=True)
    text = card_for(4, serving_variants=variants, outliers=OutlierMetrics(METHOD, 1.5, 0.975)).text
    words = " ".join(text.split())
    assert "the dynamic-range one" in words
    rows = {row.split("|")[1].strip(): row for row in re.findall(r"^\| [a-z0-9-]+ \| [0-9.]+ MB .*$", text, re.MULTILINE)}
    assert list(rows) == ["float32", "dynamic-range", "full-integer"]
    assert "2.55 MB" in rows["dynamic-range"] and "27.1 ms" in rows["dynamic-range"] and rows["dynamic-range"].endswith("served |")
    assert "95.00%" in rows["full-integer"] and rows["full-integer"].endswith("refused |")
    assert "2.5% of the validation photos are called unknown" in words and "20 of 20 reference outliers" in words
    assert "The float32 conversion is also in the folder (`model-float32.tflite`)" in words
    float_served = [dataclasses.replace(v, served=v.name == "float32") for v in variants]
    assert "also in the folder" not in card_for(4, serving_variants=float_served, outliers=OutlierMetrics(METHOD, 1.5, 0.975)).text
    assert "Served model" not in card_for(4).text


@pytest.mark.parametrize("sources", [
    [HUB_SOURCE],
    [{"spec": "photos", "type": "local", "name": "photos", "subfolder": "."}],
    [{"spec": "kaggle:someone/birds", "type": "kaggle", "version": "3", "subfolder": "."}],
    [HUB_SOURCE, {"spec": "photos", "type": "local", "name": "photos", "subfolder": "."}],
], ids=["hub dataset", "local folder", "kaggle", "hub and local"])
def test_the_card_metadata_follows_the_hub_spec_and_links_only_real_datasets(sources: list[dict]) -> None:
    """model-index names a dataset the Hub can link (the one hf: source, at its commit) or is absent:
    a local folder or Kaggle download has no Hub id, and validation on merged sources is no one dataset's."""
    metadata = card_for(3, sources=sources).data.to_dict()

    assert model_card_problems(metadata) == []
    if sources == [HUB_SOURCE]:
        [index] = metadata["model-index"]
        dataset = index["results"][0]["dataset"]
        assert dataset["type"] == "someone/birds" and dataset["revision"] == "a" * 40
        assert {metric["type"] for result in index["results"] for metric in result["metrics"]} == {"accuracy", "f1"}
    else:
        assert "model-index" not in metadata
        assert "imagefolder" not in str(card_for(3, sources=sources))

"""The model card (``README.md`` of the model folder), in the Hugging Face model-card format.

Its YAML metadata lets the Hub index the model (library, task, base model, license, training
datasets, and validation metrics as ``model-index`` results where they name a Hub dataset); its text tells a visitor what the model
knows, how well, what it was trained on, how to use it and where it fails. It stays
readable with hundreds of classes: the per-class table then shows the weakest classes and
folds the full list into a ``<details>`` block (every number is also in ``metrics.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from bird_model.artifacts import CONFUSION_FILE, CURVES_FILE, FLOAT_LITERT_FILE, METRICS_FILE
from bird_model.evaluation import Metrics
from bird_model.settings import DEFAULT_LICENSE, RunSettings

IMAGENET_BASE_MODEL = "google/mobilenet_v2_1.0_224"
"""The Hub's MobileNetV2 1.0/224 ImageNet checkpoint: the architecture and training data of the
Keras ImageNet weights we start from (Keras downloads its own copy of those weights)."""

FULL_TABLE_UP_TO = 20
"""Classes up to which the card shows the whole per-class table; beyond, the weakest
:data:`WEAKEST_SHOWN` first and the full table folded."""
WEAKEST_SHOWN = 10

MODEL_TAGS = ("image-classification", "keras", "mobilenet_v2", "birds", "tensorflow")
"""The model card's tags; the Space's card repeats them (:mod:`bird_model.space_files`)."""

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A bird-species image classifier: MobileNetV2 fine-tuned on {{ total }} photos of
{{ classes | length }} classes. It takes an RGB photo and returns a probability per class.

## Validation results

Accuracy **{{ "%.2f" | format(accuracy * 100) }}%** ({{ correct }} of {{ validation_count }} validation photos),
macro F1 {{ "%.3f" | format(macro_f1) }}. Training accuracy {{ "%.2f" | format(train_accuracy * 100) }}%.
{% if parent %}
This model retrains `{{ parent.repo_id }}` at revision `{{ parent.commit }}`{% if parent.accuracy is not none %}, whose
validation accuracy was {{ "%.2f" | format(parent.accuracy * 100) }}%{% endif %}.
{%- if comparison %} On the {{ comparison.photos }} of its {{ comparison.parent_photos }} validation photos that
this run also kept for validation, this model scores {{ "%.2f" | format(comparison.new_accuracy * 100) }}%
({{ "%+.2f" | format((comparison.new_accuracy - comparison.parent_accuracy) * 100) }} points).{% endif %}
{% endif %}
{% macro table(rows) -%}
| class | training photos | validation photos | precision | recall | F1 |
| --- | ---: | ---: | ---: | ---: | ---: |
{% for row in rows -%}
| {{ row.name }} | {{ row.train }} | {{ row.validation }} | {{ "%.3f" | format(row.precision) }} | {{ "%.3f" | format(row.recall) }} | {{ "%.3f" | format(row.f1) }} |
{% endfor %}
{%- endmacro %}
{% if weakest %}
The {{ weakest | length }} classes with the lowest validation F1 (all {{ classes | length }} are in the folded
table below and in `{{ metrics_file }}`):

{{ table(weakest) }}
<details>
<summary>All {{ classes | length }} classes</summary>

{{ table(class_rows) }}
</details>
{% else %}
{{ table(class_rows) }}
{% endif %}
![Validation confusion matrix: rows the true class, columns the predicted one, colour the share of the true class's photos]({{ confusion_file }})

![Training curves: loss and accuracy per epoch, training and validation, both phases]({{ curves_file }})

{% if variants %}
## Served model

The app serves `model.tflite`, chosen at export among three LiteRT conversions: the
{{ (variants | selectattr("served") | first).name }} one. An 8-bit conversion is served when its validation accuracy is within
0.5 points of float32's and it calls unknown every reference outlier float32 does; of those, the fastest.
{% if (variants | selectattr("served") | first).name != "float32" %}The float32 conversion is also in the folder (`{{ float_file }}`).{% endif %}

| conversion | size | validation accuracy | forward pass, p50 | reference outliers called unknown | |
| --- | ---: | ---: | ---: | ---: | --- |
{% for v in variants -%}
| {{ v.name }} | {{ "%.2f" | format(v.size_bytes / 1e6) }} MB | {{ "%.2f" | format(v.accuracy * 100) }}% | {{ "%.1f" | format(v.p50_ms) }} ms | {{ v.outliers_unknown }} of {{ v.outliers }} | {{ "served" if v.served else ("the reference" if v.name == "float32" else ("qualifies" if v.qualifies else "refused")) }} |
{% endfor %}
{%- if outliers %}
"Not one of my birds": {{ "%.1f" | format((1 - outliers.validation_pass_rate) * 100) }}% of the validation photos are called unknown
(the threshold is set for at most {{ "%.0f" | format((1 - unknown_pass_rate) * 100) }}%){% if variants %}{% set served = variants | selectattr("served") | first %}; so are
{{ served.outliers_unknown }} of {{ served.outliers }} reference outliers (flat colours, noise){% if served.own_outliers %} and {{ served.own_outliers_unknown }} of the
{{ served.own_outliers }} photos of other things the trainer gave (`--outlier-photos`){% endif %}{% endif %}.
{% endif %}
{% endif -%}
## Training data

{{ total }} usable photos{% if rejected %}; {{ rejected }} files were skipped (listed with reasons in
`dataset_report.json`){% endif %}. Near-identical photos were kept on the same side of the split.
Dataset fingerprint `{{ fingerprint[:16] }}`. Sources:
{% for source in sources %}
- {{ source }}
{%- endfor %}

Base weights: {{ base_weights }} Image size {{ image_size }} px. Two-phase fine-tuning
(frozen base, then the top {{ "%.0f" | format(fine_tune_fraction * 100) }}% of MobileNetV2) with TensorFlow
{{ tensorflow_version }} / Keras {{ keras_version }}. License: `{{ license }}`{% if license == "unknown" %} (the
trainer did not state one: the photos' own terms apply){% endif %}.

## How to use

From Python (Keras 3). `load_photo` decodes a photo exactly as training did (this project's
`bird_model.images.load_rgb`, for 8-bit photos): the camera's EXIF rotation applied,
transparency on white, bilinear resizing to {{ image_size }} x {{ image_size }} without keeping the aspect ratio.
The model scales the 0-255 pixels itself. The repo's root holds it in Keras' own layout
(`config.json`, `model.weights.h5`, `metadata.json`), which `keras.saving.load_model("hf://...")` reads;
the training run's settings are in `run_config.json`.

```python
import json

import keras
import numpy as np
from huggingface_hub import hf_hub_download
from PIL import Image, ImageOps


def load_photo(path, size={{ image_size }}):
    image = Image.open(path)
    image.draft("RGB", (size, size))  # a large JPEG decodes at a reduced scale that still covers size
    factor = min(image.size) // (2 * size)
    if factor >= 2:  # shrink large photos first: box average (palette images: sampled)
        if image.mode == "P":
            image = image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
        else:
            image = image.reduce(factor)
    image = ImageOps.exif_transpose(image)  # the camera's rotation
    if image.mode in ("RGBA", "LA", "PA", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


model = keras.saving.load_model("hf://{{ repo_id }}")  # safe_mode: no code from the repo runs
labels = json.load(open(hf_hub_download("{{ repo_id }}", "labels.json")))["id2label"]
probabilities = model.predict(load_photo("bird.jpg")[None], verbose=0)[0]
print(labels[str(probabilities.argmax())], probabilities.max())
```

As a web demo: serve it with this project's `app.py` (`BIRD_MODEL={{ repo_id }} python app.py`),
or deploy that app as a Gradio Space with the variable `BIRD_MODEL={{ repo_id }}`.

## Limits

- It only knows the {{ classes | length }} classes above; the app calls a photo unlike all of them "unknown", but
  Keras alone forces every photo into one of them.
- {{ validation_count }} validation photos give a coarse estimate: one photo is {{ "%.1f" | format(100 / validation_count) }} points of accuracy.
- Trained on photos like those in the dataset; drawings, very dark or heavily cropped photos may be misjudged.
"""


@dataclass(frozen=True)
class ClassRow:
    """One line of the per-class table: photo counts and validation scores."""

    name: str
    train: int
    validation: int
    precision: float
    recall: float
    f1: float


def render_model_card(config: dict[str, Any], metrics: Metrics, repo_id: str | None = None) -> ModelCard:
    """Build the card from a model folder's config and metrics.

    ``repo_id`` fills the usage snippets; before a folder is published it reads OWNER/NAME.
    """
    validation = metrics.validation
    dataset = config["dataset"]
    license_id = config.get("license") or DEFAULT_LICENSE
    base_model = IMAGENET_BASE_MODEL if config["base_weights"] == "imagenet" else None
    hub_datasets = [source["repo_id"] for source in dataset["sources"] if source.get("type") == "hf"]
    card_data = ModelCardData(
        base_model=base_model,
        license=license_id,
        datasets=hub_datasets or None,
        library_name="keras",
        pipeline_tag="image-classification",
        tags=list(MODEL_TAGS),
        model_name=config["model_name"],
        metrics=["accuracy", "f1"],
        eval_results=eval_results(dataset["sources"], metrics) or None,
    )
    counts = dataset["split_counts"]
    class_rows = [
        ClassRow(name, counts["train"][name], counts["validation"][name], scores.precision, scores.recall, scores.f1)
        for name, scores in ((name, validation.per_class[name]) for name in config["classes"])
    ]
    weakest = sorted(class_rows, key=lambda row: (row.f1, row.name))[:WEAKEST_SHOWN]
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=config["model_name"],
        classes=config["classes"],
        class_rows=class_rows,
        weakest=weakest if len(class_rows) > FULL_TABLE_UP_TO else [],
        accuracy=validation.accuracy,
        correct=validation.correct,
        validation_count=validation.count,
        macro_f1=validation.macro_f1,
        train_accuracy=metrics.training.accuracy,
        total=dataset["usable"],
        rejected=dataset["rejected"],
        fingerprint=dataset["fingerprint"],
        sources=[_describe_source(source) for source in dataset["sources"]],
        base_weights=_describe_base_weights(config["base_weights"]),
        license=license_id,
        image_size=config["image_size"],
        fine_tune_fraction=config["training"]["fine_tune_fraction"],
        tensorflow_version=config["versions"]["tensorflow"],
        keras_version=config["versions"]["keras"],
        parent=config.get("parent"),
        comparison=metrics.parent_comparison,
        repo_id=repo_id or "OWNER/NAME",
        metrics_file=METRICS_FILE,
        confusion_file=CONFUSION_FILE,
        curves_file=CURVES_FILE,
        variants=metrics.serving_variants,
        outliers=metrics.outliers,
        unknown_pass_rate=RunSettings.unknown_pass_rate,
        float_file=FLOAT_LITERT_FILE,
    )


def eval_results(sources: list[dict[str, Any]], metrics: Metrics) -> list[EvalResult]:
    """The validation scores as ``model-index`` results, which the Hub links to the dataset they name.

    ``model-index`` requires a dataset ``type``, a Hub dataset id; only a run on one ``hf:`` dataset
    has one (its validation photos are held out from it, at the commit trained on). A local folder
    or a Kaggle download is no Hub dataset, and several sources are no one dataset, so such a card
    has no results there (a made-up id would be a dead link): its scores are in its text and
    ``metrics.json``.
    """
    if len(sources) != 1 or sources[0].get("type") != "hf":
        return []
    source = sources[0]
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=source["repo_id"],
            dataset_name=f"{source['repo_id']}: validation photos held out by this run",
            dataset_revision=source.get("commit") or None,
            metric_type=metric,
            metric_name=name,
            metric_value=round(getattr(metrics.validation, key), 4),
        )
        for metric, name, key in (("accuracy", "Accuracy", "accuracy"), ("f1", "Macro F1", "macro_f1"))
    ]


def default_model_name(sources: list[dict[str, str]]) -> str:
    """``<first data source's name>-classifier``: the same name for every run on the same data.

    A local folder gives its name, ``kaggle:OWNER/DATASET`` and ``hf:OWNER/NAME`` their
    dataset's name; the result is a lowercase Hub-style slug (``parrots-classifier``).
    """
    first = sources[0] if sources else {}
    if first.get("type") == "local":
        name = first.get("name", "")
    else:
        name = first.get("spec", "").split(":", 1)[-1].split("/")[:2][-1]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "bird"
    return f"{slug}-classifier"


def _describe_base_weights(base_weights: str) -> str:
    """What the model started from, stated honestly: only ImageNet weights are a published checkpoint."""
    if base_weights == "imagenet":
        return (f"the Keras ImageNet weights of MobileNetV2 1.0/224 (the architecture and data of "
                f"[`{IMAGENET_BASE_MODEL}`](https://huggingface.co/{IMAGENET_BASE_MODEL}), the card's `base_model`).")
    if base_weights == "none":
        return "none: trained from a random start, so there is no base model."
    return f"a local weights file, `{base_weights}`, not a published checkpoint (so the card names no `base_model`)."


def _describe_source(source: dict[str, str]) -> str:
    """A source with its exact version, so a model can be traced to its data."""
    version = {
        "hf": f"Hub dataset commit `{source.get('commit', '')[:12]}`",
        "kaggle": f"Kaggle dataset version {source.get('version')}",
    }.get(source.get("type", ""))
    return f"`{source['spec']}`" + (f" ({version})" if version else "")

"""The model card (``README.md`` of the model folder), in the Hugging Face model-card format.

Its YAML metadata lets the Hub index the model (library, task, validation metrics as eval
results); its text tells a visitor what the model knows, what it was trained on, how to use
it and where it fails.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from bird_model.evaluation import Metrics

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A bird-species image classifier: MobileNetV2 fine-tuned on {{ total }} photos of
{{ classes | length }} classes. It takes an RGB photo and returns a probability per class.

## Classes

| index | class | training photos | validation photos |
| --- | --- | --- | --- |
{% for row in class_rows -%}
| {{ row.index }} | {{ row.name }} | {{ row.train }} | {{ row.validation }} |
{% endfor %}

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

| class | precision | recall | F1 | photos |
| --- | --- | --- | --- | --- |
{% for name, scores in per_class.items() -%}
| {{ name }} | {{ "%.3f" | format(scores.precision) }} | {{ "%.3f" | format(scores.recall) }} | {{ "%.3f" | format(scores.f1) }} | {{ scores.support }} |
{% endfor %}

![Confusion matrix](confusion_matrix.png)

## Training data

{{ total }} usable photos{% if rejected %}; {{ rejected }} files were skipped (listed with reasons in
`dataset_report.json`){% endif %}. Near-identical photos were kept on the same side of the split.
Dataset fingerprint `{{ fingerprint[:16] }}`. Sources:
{% for source in sources %}
- {{ source }}
{%- endfor %}

Base weights: `{{ base_weights }}`. Image size {{ image_size }} px. Two-phase fine-tuning
(frozen base, then the top {{ "%.0f" | format(fine_tune_fraction * 100) }}% of MobileNetV2) with TensorFlow
{{ tensorflow_version }} / Keras {{ keras_version }}.

## How to use

From Python (Keras 3):

```python
import json, keras, numpy as np
from huggingface_hub import snapshot_download
from PIL import Image

folder = snapshot_download("{{ repo_id }}")
model = keras.saving.load_model(f"{folder}/model.keras", safe_mode=True)
labels = json.load(open(f"{folder}/labels.json"))["id2label"]
pixels = np.asarray(Image.open("bird.jpg").convert("RGB").resize(({{ image_size }}, {{ image_size }})), dtype="float32")
probabilities = model.predict(pixels[None])[0]   # the model scales 0-255 pixels itself
print(labels[str(probabilities.argmax())], probabilities.max())
```

As a web demo: serve it with this project's `app.py` (`BIRD_MODEL={{ repo_id }} python app.py`),
or deploy that app as a Gradio Space with the variable `BIRD_MODEL={{ repo_id }}`.

## Limits

- It only knows the {{ classes | length }} classes above; any other photo is forced into one of them.
- {{ validation_count }} validation photos give a coarse estimate: one photo is {{ "%.1f" | format(100 / validation_count) }} points of accuracy.
- Trained on photos like those in the dataset; drawings, very dark or heavily cropped photos may be misjudged.
"""


def render_model_card(config: dict[str, Any], metrics: Metrics, repo_id: str | None = None) -> ModelCard:
    """Build the card from a model folder's config and metrics.

    ``repo_id`` fills the usage snippets; before a folder is published it reads OWNER/NAME.
    """
    validation = metrics.validation
    dataset = config["dataset"]
    card_data = ModelCardData(
        library_name="keras",
        pipeline_tag="image-classification",
        tags=["image-classification", "keras", "mobilenetv2", "birds", "tensorflow"],
        model_name=config["model_name"],
        metrics=["accuracy", "f1"],
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type="imagefolder",
                dataset_name=config["model_name"] + " photos",
                dataset_split="validation",
                metric_type=metric,
                metric_name=name,
                metric_value=round(getattr(validation, key), 4),
            )
            for metric, name, key in (("accuracy", "Accuracy", "accuracy"), ("f1", "Macro F1", "macro_f1"))
        ],
    )
    counts = dataset["split_counts"]
    class_rows = [
        {"index": i, "name": name, "train": counts["train"][name], "validation": counts["validation"][name]}
        for i, name in enumerate(config["classes"])
    ]
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=config["model_name"],
        classes=config["classes"],
        class_rows=class_rows,
        accuracy=validation.accuracy,
        correct=validation.correct,
        validation_count=validation.count,
        macro_f1=validation.macro_f1,
        per_class=validation.per_class,
        train_accuracy=metrics.training.accuracy,
        total=dataset["usable"],
        rejected=dataset["rejected"],
        fingerprint=dataset["fingerprint"],
        sources=[_describe_source(source) for source in dataset["sources"]],
        base_weights=config["base_weights"],
        image_size=config["image_size"],
        fine_tune_fraction=config["training"]["fine_tune_fraction"],
        tensorflow_version=config["versions"]["tensorflow"],
        keras_version=config["versions"]["keras"],
        parent=config.get("parent"),
        comparison=metrics.parent_comparison,
        repo_id=repo_id or "OWNER/NAME",
    )


def _describe_source(source: dict[str, str]) -> str:
    """A source with its exact version, so a model can be traced to its data."""
    version = {
        "hf": f"Hub dataset commit `{source.get('commit', '')[:12]}`",
        "kaggle": f"Kaggle dataset version {source.get('version')}",
    }.get(source.get("type", ""))
    return f"`{source['spec']}`" + (f" ({version})" if version else "")

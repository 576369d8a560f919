"""The Gradio demo: a photo in, the top-k classes with their confidences out."""

from __future__ import annotations

from typing import Any

import gradio as gr

from bird_model.images import ImageError
from bird_model.inference import Classifier


class PhotoUpload(gr.Image):
    """``gr.Image`` that passes the uploaded file through undecoded.

    Stock ``gr.Image`` opens every upload with Pillow before our function runs, so an empty,
    corrupt or non-image file fails inside Gradio and a caller only sees a generic error.
    Handing the raw file to :func:`bird_model.images.load_rgb` gives every bad file its own
    message and decodes good ones exactly as in training. ``is_template`` makes the browser
    reuse the stock image widget.
    """

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is not None and payload.path is not None:
            return payload.path
        return super().preprocess(payload)


def build_demo(classifier: Classifier, top_k: int, version: str) -> gr.Interface:
    """``gr.Interface`` with ``api_name="predict"``; ``version`` names what is served."""
    folder = classifier.folder
    top_k = max(1, min(top_k, len(classifier.classes)))

    def classify(photo: str | None) -> dict[str, float]:
        if photo is None:
            raise gr.Error("No photo received: upload a photo of a bird first.")
        try:
            scores = classifier.predict(photo)
        except ImageError as error:
            raise gr.Error(str(error), print_exception=False) from error
        return dict(list(scores.items())[:top_k])

    accuracy = folder.metrics["validation"]["accuracy"]
    description = (
        f"Upload a photo of a bird. This model knows {len(classifier.classes)} classes: "
        f"{', '.join(classifier.classes)}.\n\n"
        f"Validation accuracy {accuracy:.1%} on {folder.metrics['validation']['count']} photos · model {version}"
    )
    return gr.Interface(
        fn=classify,
        inputs=PhotoUpload(type="filepath", label="Bird photo", sources=["upload", "webcam", "clipboard"]),
        outputs=gr.Label(num_top_classes=top_k, label="Prediction"),
        examples=[[str(path)] for path in folder.examples()] or None,
        cache_examples=False,
        title="Bird species classifier",
        description=description,
        flagging_mode="never",
        api_name="predict",
    )

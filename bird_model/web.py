"""The Gradio demo: a photo in, the top-k classes with their confidences out; visitors'
corrections back; the operator's Monitoring tab."""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.label import LabelData

from bird_model.artifacts import ModelFolder, ModelFolderError
from bird_model.feedback import NONE_OF_THESE, FeedbackError, FeedbackStore, read_visitor_reports
from bird_model.images import ImageError
from bird_model.inference import Classifier, Prediction
from bird_model.monitoring import (
    FIGURE_NAMES,
    ModelIdentity,
    build_report,
    read_baseline,
    read_log,
    report_lines,
    save_figures,
)

MonitoringView = Callable[[], tuple[str, list[str | None]]]
"""The monitoring tab's content: a Markdown summary and one PNG file per ``FIGURE_NAMES``."""


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


class VerdictLabel(gr.Label):
    """``gr.Label`` whose headline may differ from the top class.

    Stock ``gr.Label`` always heads with its highest score; for a photo that is none of
    the known birds the headline must say so while the scores stay visible. It therefore
    also takes the ``{"label", "confidences"}`` form it sends, unchanged.
    """

    is_template = True

    def postprocess(self, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("confidences"), list):
            return LabelData(**value)
        return super().postprocess(value)


class PhotoFeedback(gr.FlaggingCallback):
    """Gradio's flagging, storing a flagged photo as a correction in a :class:`FeedbackStore`.

    One flag button per :meth:`options` entry: "Right", one per class the store can keep, and
    "None of these". Gradio calls :meth:`flag` with the unprocessed inputs and outputs (the
    photo as its upload-cache file, which Gradio has checked is in its cache) and the pressed
    button's value. Only the photo and the value are used: the outputs come from the browser,
    so the model's answer is computed again by the store. Gradio runs flag events outside its
    queue and turns any exception into the button reading "Error!" (and a line in the app's output).
    """

    RIGHT = "right"
    NONE = "none"

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self._reported = {self.RIGHT: None, self.NONE: NONE_OF_THESE}
        self._reported |= {f"class {index}": name for index, name in enumerate(store.storable)}

    def options(self) -> list[tuple[str, str]]:
        """``flagging_options``: (button label, value); values are ours, never a class name, so no
        class can be mistaken for "right"."""
        classes = [(f"It is: {name}", f"class {index}") for index, name in enumerate(self.store.storable)]
        return [("Right", self.RIGHT), *classes, ("None of these", self.NONE)]

    def setup(self, components: Sequence[gr.components.Component], flagging_dir: str) -> None:
        """Nothing to prepare: the store writes into the prediction log folder, not ``flagging_dir``."""

    def flag(self, flag_data: list[Any], flag_option: str | None = None, username: str | None = None) -> int:
        if flag_option not in self._reported:
            raise FeedbackError("Unknown feedback button.")
        photo = flag_data[0].get("path") if flag_data and isinstance(flag_data[0], dict) else None
        reported = self._reported[flag_option]
        self.store.report(photo, reported, via="page", right=reported is None)
        return self.store.files


def build_demo(
    classifier: Classifier,
    top_k: int,
    version: str,
    on_prediction: Callable[[str, Prediction], None] | None = None,
    delete_cache: tuple[int, int] | None = None,
    feedback: FeedbackStore | None = None,
) -> gr.Interface:
    """``gr.Interface`` with ``api_name="predict"``; ``version`` names what is served.

    The API returns ``(label, details)``: ``label`` is ``gr.Label``'s
    ``{"label", "confidences"}`` (top ``k``), and ``details`` says whether the photo looks
    like one of the known classes (``"verdict": "known" | "unknown"``); see README.md.
    ``on_prediction`` sees every served prediction (not refused files) before its answer
    is sent, so a caller that got an answer can count on it being recorded. ``delete_cache``
    is Gradio's (every, older than) sweep of uploaded files. With ``feedback``, visitors can
    report the right class: flag buttons under the answer (:class:`PhotoFeedback`) and the API
    endpoint ``/feedback`` (:func:`add_feedback_api`).
    """
    folder = classifier.folder
    top_k = max(1, min(top_k, len(classifier.classes)))
    unknown_label = f"Unknown: this does not look like any of {_listing(classifier.classes)}"

    def classify(photo: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        if photo is None:
            raise gr.Error("No photo received: upload a photo of a bird first.")
        try:
            prediction = classifier.classify(photo)
        except ImageError as error:
            raise gr.Error(str(error), print_exception=False) from error
        if on_prediction is not None:
            on_prediction(photo, prediction)
        return answer(prediction, top_k, unknown_label, version)

    accuracy = folder.metrics.validation.accuracy
    description = (
        f"Upload a photo of a bird. This model knows {len(classifier.classes)} classes: "
        f"{_listing(classifier.classes)}; a photo unlike all of them is called unknown.\n\n"
        f"Validation accuracy {accuracy:.1%} on {folder.metrics.validation.count} photos · model {version}"
    )
    if feedback is not None:
        description += f"\n\n{FEEDBACK_NOTICE}"
    callback = PhotoFeedback(feedback) if feedback is not None else None
    interface = gr.Interface(
        fn=classify,
        inputs=PhotoUpload(type="filepath", label="Bird photo", sources=["upload", "webcam", "clipboard"]),
        outputs=[VerdictLabel(num_top_classes=top_k, label="Prediction"), gr.JSON(label="Details")],
        examples=[[str(path)] for path in folder.examples()] or None,
        cache_examples=False,
        title="Bird species classifier",
        description=description,
        flagging_mode="never" if callback is None else "manual",
        flagging_options=None if callback is None else callback.options(),
        flagging_callback=callback,
        api_name="predict",
        delete_cache=delete_cache,
    )
    if feedback is not None:
        add_feedback_api(interface, feedback)
    return interface


FEEDBACK_NOTICE = (
    "**Sending feedback keeps your photo.** The buttons under the answer (Right, It is: …, None of these) "
    "store your photo with your answer, to check and retrain the model. Don't press them for a photo you "
    "do not want kept."
)


def add_feedback_api(interface: gr.Interface, store: FeedbackStore) -> None:
    """``/feedback``: ``(photo, class name or "none of these")`` in, ``{"class": ...}`` out.

    The Interface's flag buttons take no class through the API (each is an undocumented event
    with its value fixed on the server), so API users get this event of their own, on hidden
    components. It shares the classifier's concurrency slots, so reports cannot decode more
    photos at once than predictions do. It answers what was stored and nothing else.
    """
    predict = next(fn for fn in interface.fns.values() if fn.api_name == "predict")

    def report(photo: str | None, reported: str | None) -> dict[str, str]:
        try:
            receipt = store.report(photo, reported, via="api")
        except (ImageError, FeedbackError) as error:
            raise gr.Error(str(error), print_exception=False) from error
        return {"class": receipt.reported}

    with interface:
        photo = PhotoUpload(type="filepath", label="Bird photo", visible=False)
        reported = gr.Textbox(label=f"Class (or {NONE_OF_THESE})", visible=False)
        stored = gr.JSON(label="Stored", visible=False)
        trigger = gr.Button("Send feedback", visible=False)
        trigger.click(report, [photo, reported], stored, api_name="feedback", concurrency_id=predict.concurrency_id,
                      show_progress="hidden")


def with_monitoring(interface: gr.Interface, view: MonitoringView) -> gr.Blocks:
    """The classifier and a "Monitoring" tab, which computes its view only when opened or refreshed.

    For the operator only (app.py's ``--monitoring``): a private event is still callable
    through Gradio's queue by anyone who reads the page's config. Its events share one
    concurrency slot of their own, so at most one report is computed at a time and the
    classifier's queue never waits for it; the API stays ``/predict`` (and ``/feedback``).
    """
    with gr.Blocks(title="Bird species classifier", delete_cache=interface.delete_cache) as demo:
        with gr.Tabs():
            with gr.Tab("Classify"):
                interface.render()
            with gr.Tab("Monitoring") as tab:
                refresh = gr.Button("Refresh", variant="secondary")
                summary = gr.Markdown("Open this tab or press Refresh to read the prediction log.")
                plots = [gr.Image(label=name.replace("_", " "), interactive=False)
                         for name in FIGURE_NAMES]

        def show() -> list[Any]:
            text, drawn = view()
            return [text, *drawn]

        for event in (tab.select, refresh.click):
            event(show, outputs=[summary, *plots], api_visibility="private", concurrency_id="monitoring",
                  concurrency_limit=1)
    return demo


def answer(prediction: Prediction, top_k: int, unknown_label: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two outputs: the label panel (top ``k`` scores) and the machine-readable verdict."""
    confidences = [{"label": name, "confidence": score} for name, score in list(prediction.scores.items())[:top_k]]
    details = {
        "verdict": "unknown" if prediction.unknown else "known",
        "label": prediction.label,
        "confidence": prediction.confidence,
        "outlier_score": prediction.outlier_score,
        "model": version,
    }
    label = unknown_label if prediction.unknown else prediction.label
    return {"label": label, "confidences": confidences}, details


def _listing(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


DASHBOARD_DAYS = 7
"""The app's tab reports the last week: recent enough that a new shift is not diluted by
months of normal traffic, and a bounded read however long the app has been serving."""
DASHBOARD_SECONDS = 10.0
"""The tab recomputes at most this often and shows the last result in between. Drawing and
encoding the four figures costs about 0.4 s of CPU, which holds the interpreter lock while
predictions wait; so even constant refreshing costs at most ~4% of the server's time."""


class Dashboard:
    """The app's Monitoring tab: the monitor command's report as Markdown, and its plots as PNG files."""

    def __init__(self, log_folder: Path, model: ModelIdentity, folder: ModelFolder, version: str) -> None:
        self.log_folder, self.model, self.folder, self.version = log_folder, model, folder, version
        self._plots = Path(tempfile.mkdtemp(prefix="bird-monitoring-"))
        self._lock = threading.Lock()
        self._shown: tuple[str, list[str | None]] | None = None
        self._computed_at = -math.inf

    def __call__(self) -> tuple[str, list[str | None]]:
        with self._lock:
            if self._shown is None or time.monotonic() - self._computed_at >= DASHBOARD_SECONDS:
                self._shown, self._computed_at = self._compute(), time.monotonic()
            return self._shown

    def _compute(self) -> tuple[str, list[str | None]]:
        try:
            baseline = read_baseline(self.folder)
        except ModelFolderError as error:
            return f"Monitoring is unavailable: {error}", [None] * len(FIGURE_NAMES)
        since = datetime.now(timezone.utc) - timedelta(days=DASHBOARD_DAYS)
        log = read_log(self.log_folder, self.model, baseline, since)
        visitors = read_visitor_reports(self.log_folder, self.model, self.folder, since)
        report = build_report(log, baseline, f"{self.version}, last {DASHBOARD_DAYS} days", visitors)
        plots: list[str | None] = [str(path) for path in save_figures(report, self._plots)]
        body = "\n".join(report_lines(report))
        return f"**{report.headline}**\n\n```text\n{body}\n```", plots

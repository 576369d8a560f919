"""The Gradio demo: a photo in, the top-k classes with their confidences and where the model
looked out; visitors' corrections back; the operator's Monitoring tab."""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.label import LabelData
from PIL import Image

from bird_model.artifacts import ModelFolder, ModelFolderError
from bird_model.feedback import NONE_OF_THESE, FeedbackError, FeedbackStore, read_visitor_reports
from bird_model.images import ImageError, read_header
from bird_model.inference import Classifier, Explanation, Prediction
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

    One flag button per :meth:`options` entry: "Right", one per class the store can keep (up to
    :data:`CLASS_BUTTONS` classes; beyond, the page picks the class from a dropdown,
    :meth:`report_choice`), and "None of these". Gradio calls :meth:`flag` with the unprocessed inputs and outputs (the
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
        self.button_per_class = len(store.storable) <= CLASS_BUTTONS

    def options(self) -> list[tuple[str, str]]:
        """``flagging_options``: (button label, value); values are ours, never a class name, so no
        class can be mistaken for "right"."""
        classes = [(f"It is: {name}", f"class {index}") for index, name in enumerate(self.store.storable)]
        return [("Right", self.RIGHT), *(classes if self.button_per_class else []), ("None of these", self.NONE)]

    def report_choice(self, photo: str | None, reported: str | None) -> None:
        """The dropdown's "It is this bird" for many classes: stored like a flag button's report."""
        try:
            self.store.report(photo, reported, via="page", right=False)
        except (ImageError, FeedbackError) as error:
            raise gr.Error(str(error), print_exception=False) from error
        gr.Info(f"Thank you: your photo is kept as {reported}.")

    def setup(self, components: Sequence[gr.components.Component], flagging_dir: str) -> None:
        """Nothing to prepare: the store writes into the prediction log folder, not ``flagging_dir``."""

    def flag(self, flag_data: list[Any], flag_option: str | None = None, username: str | None = None) -> int:
        if flag_option not in self._reported:
            raise FeedbackError("Unknown feedback button.")
        photo = flag_data[0].get("path") if flag_data and isinstance(flag_data[0], dict) else None
        reported = self._reported[flag_option]
        self.store.report(photo, reported, via="page", right=reported is None)
        return self.store.files


CLASS_BUTTONS = 8
"""Up to this many classes, each gets its own feedback button; beyond, a wall of buttons would
bury the page (500 species), so the class is picked from a searchable dropdown instead."""


class ClassifierPage(gr.Interface):
    """``gr.Interface`` that also shows components under its outputs that are not among them.

    The overlay belongs beside the answer, yet ``/predict``'s outputs are a documented API
    that must not change; so it is rendered in the output column and filled by events of its own.
    """

    def __init__(self, *, beside_answer: list[gr.components.Component], **kwargs: Any) -> None:
        self.beside_answer = beside_answer
        super().__init__(**kwargs)

    def render_output_column(self, submit_btn_in: gr.Button | None) -> Any:
        outputs = self.output_components
        self.output_components = [*outputs, *self.beside_answer]
        try:
            return super().render_output_column(submit_btn_in)
        finally:
            self.output_components = outputs


class RecentOverlays:
    """The overlays of the last few answered photos, by upload path, for the page to show.

    The page's answer and its overlay come from one forward pass, but reach the browser through
    two events (``/predict``'s outputs cannot grow); the second event picks the overlay up here.
    Gradio names an upload after its content, so a path always means the same photo.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._overlays: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, photo: str, overlay: Image.Image) -> None:
        with self._lock:
            self._overlays[photo] = overlay
            self._overlays.move_to_end(photo)
            while len(self._overlays) > self.size:
                self._overlays.popitem(last=False)

    def get(self, photo: str | None) -> Image.Image | None:
        with self._lock:
            return self._overlays.get(photo) if photo is not None else None


PAGE_OVERLAY_SIDE = 320
"""Pixels the page shows the overlay at (the API's ``/explain`` answers at the model's size)."""
NO_PHOTO = "No photo received: upload a photo of a bird first."
TOO_OLD = ("This model cannot show where it looked: its model.tflite was converted before the overlay existed. "
           "Retrain it with the current train.py to get /explain.")


def build_demo(
    classifier: Classifier,
    top_k: int,
    version: str,
    on_prediction: Callable[[str, Prediction], None] | None = None,
    delete_cache: tuple[int, int] | None = None,
    feedback: FeedbackStore | None = None,
) -> gr.Interface:
    """``gr.Interface`` with ``api_name="predict"`` and ``"explain"``; ``version`` names what is served.

    The API returns ``(label, details)``: ``label`` is ``gr.Label``'s
    ``{"label", "confidences"}`` (top ``k``), and ``details`` says whether the photo looks
    like one of the known classes (``"verdict": "known" | "unknown"``); see README.md.
    ``on_prediction`` sees every served prediction (not refused files) before its answer
    is sent, so a caller that got an answer can count on it being recorded. ``delete_cache``
    is Gradio's (every, older than) sweep of uploaded files. With ``feedback``, visitors can
    report the right class: flag buttons under the answer (:class:`PhotoFeedback`) and the API
    endpoint ``/feedback`` (:func:`add_feedback_api`). ``/explain`` returns the overlay of where
    the model looked (:func:`add_explain_api`); the page shows it beside the answer.
    """
    folder = classifier.folder
    top_k = max(1, min(top_k, len(classifier.classes)))
    unknown_label = unknown_verdict(len(classifier.classes))
    overlays = RecentOverlays()

    def classify(photo: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        explained = _explained(classifier, photo)
        if explained.overlay is not None:
            overlays.keep(photo, explained.overlay)
        if on_prediction is not None:
            on_prediction(photo, explained.prediction)
        return answer(explained.prediction, top_k, unknown_label, version)

    description = f"Upload a photo of a bird. {_knows(classifier.classes)}"
    if feedback is not None:
        description += f"\n\n{FEEDBACK_NOTICE}"
    callback = PhotoFeedback(feedback) if feedback is not None else None
    examples = folder.examples()
    overlay = gr.Image(label="Where it looked for its top answer (bright: strongest evidence)", type="pil",
                       interactive=False, render=False, visible=False, height=PAGE_OVERLAY_SIDE + 40,
                       elem_id="overlay")
    choice = (
        [gr.Dropdown(feedback.storable, value=None, label="It is another bird: pick it (sending keeps your photo)",
                     render=False),
         gr.Button("Send: it is this bird", size="sm", render=False)]
        if callback is not None and not callback.button_per_class else []
    )
    interface = ClassifierPage(
        beside_answer=[overlay, *choice],
        fn=classify,
        inputs=PhotoUpload(type="filepath", label="Bird photo", sources=["upload", "webcam", "clipboard"]),
        outputs=[
            VerdictLabel(num_top_classes=top_k, label="Answer · bars: how much it looks like each bird I know "
                                                      "(they share 100%, even for a photo of none)"),
            gr.JSON(label="Details (as the API returns them)"),
        ],
        title="Bird species classifier",
        description=description,
        flagging_mode="never" if callback is None else "manual",
        flagging_options=None if callback is None else callback.options(),
        flagging_callback=callback,
        api_name="predict",
        delete_cache=delete_cache,
    )
    photo_input, label_output = interface.input_components[0], interface.output_components[0]
    with interface:
        # A file the browser cannot show leaves a broken-image icon in the input: say at once
        # what is wrong with it (the header is enough to know) and empty the input.
        photo_input.upload(_check_header, photo_input, None, api_visibility="private",
                           show_progress="hidden").failure(lambda: None, None, photo_input, api_visibility="private")
        # Each new answer (or its clearing) brings the overlay from the same forward pass; the
        # overlay is shown only while there is one (never for a model too old to draw it).
        def show_overlay(photo: str | None) -> gr.Image:
            shown = overlays.get(photo)
            if shown is None:
                return gr.Image(None, visible=False)
            # The browser never enlarges an image; at model size (96-224 px) it would be a thumbnail.
            return gr.Image(shown.resize((PAGE_OVERLAY_SIDE, PAGE_OVERLAY_SIDE), Image.Resampling.BILINEAR),
                            visible=True)

        label_output.change(show_overlay, photo_input, overlay, api_visibility="private", show_progress="hidden")
        if examples:
            # A gallery rather than Interface's examples: those show either the photos or
            # their labels, and a visitor needs both to know what each class looks like.
            gallery = gr.Gallery([(str(path), folder.example_class(path)) for path in examples],
                                 label="Examples: click one to try it", columns=min(len(examples), 6),
                                 height="auto", allow_preview=False, object_fit="cover")

            def pick(selected: gr.SelectData) -> str:
                """The clicked photo's copy in Gradio's cache (the model folder itself is blocked)."""
                return selected.value["image"]["path"]

            gallery.select(pick, None, photo_input, api_visibility="private", show_progress="hidden")
        gr.Markdown(limits_note(folder, version))
        if callback is not None and choice:
            chosen, send = choice
            send.click(callback.report_choice, [photo_input, chosen], None, api_visibility="private",
                       concurrency_id=_predict_slots(interface))
    add_explain_api(interface, classifier)
    if feedback is not None:
        add_feedback_api(interface, feedback)
    return interface


def _explained(classifier: Classifier, photo: str | None) -> Explanation:
    """One forward pass for the page or the API; a missing or unusable photo is a one-line message."""
    if photo is None:
        raise gr.Error(NO_PHOTO, print_exception=False)
    try:
        return classifier.explain(photo)
    except ImageError as error:
        raise gr.Error(str(error), print_exception=False) from error


def _predict_slots(interface: gr.Interface) -> str:
    """``/predict``'s concurrency id: events that decode photos share its slots, so they cannot
    decode more photos at once than predictions do."""
    return next(fn for fn in interface.fns.values() if fn.api_name == "predict").concurrency_id


def _check_header(photo: str | None) -> None:
    if photo is None:
        return
    try:
        read_header(photo)
    except ImageError as error:
        raise gr.Error(str(error), print_exception=False) from error


LISTED_CLASSES = 12
"""The description names every class up to this many; beyond, it names the first ones and a count."""


def _knows(classes: list[str]) -> str:
    if len(classes) <= LISTED_CLASSES:
        return f"I know {len(classes)} birds: {_listing(classes)}."
    shown = ", ".join(classes[:LISTED_CLASSES - 2])
    return f"I know {len(classes)} birds: {shown} and {len(classes) - LISTED_CLASSES + 2} more (see below)."


def limits_note(folder: ModelFolder, version: str) -> str:
    """"What this model knows and its limits", from the model folder's config and metrics."""
    config, validation = folder.config, folder.metrics.validation
    trained_on = sum(config.get("dataset", {}).get("split_counts", {}).get("train", {}).values())
    weights = config.get("base_weights") or "none (trained from scratch)"
    classes = ", ".join(folder.classes)
    if len(folder.classes) > LISTED_CLASSES:
        classes = f"<details><summary>all {len(folder.classes)}</summary>{classes}</details>"
    return (
        "### What this model knows, and its limits\n"
        f"- **Knows** {len(folder.classes)} birds: {classes}\n"
        f"- **Trained on** {trained_on} photos, starting from the image model `{weights}` (MobileNetV2).\n"
        f"- **Validation accuracy** {validation.accuracy:.1%} on {validation.count} photos it had not trained "
        "on, from the same collection; photos from elsewhere may do worse.\n"
        "- **Limits**: it always picks among the birds it knows, so a separate check calls a photo "
        "unlike all of them unknown; that check is not perfect either. It sees the photo squeezed to "
        f"{folder.image_size}x{folder.image_size} pixels: a small or distant bird, several birds, or a "
        "drawing can fool it. The overlay shows where the evidence for its top answer was, not why.\n"
        f"- Model {version}"
    )


def add_explain_api(interface: gr.Interface, classifier: Classifier) -> None:
    """``/explain``: a photo in, the overlay of where the model looked for its top class out.

    Its own endpoint, so ``/predict``'s documented outputs stay as they are; it shares the
    classifier's concurrency slots, like ``/feedback``. A model converted before the overlay
    existed answers every call with :data:`TOO_OLD`.
    """

    def explain(photo: str | None) -> Image.Image:
        if not classifier.explains:
            raise gr.Error(TOO_OLD, print_exception=False)
        explained = _explained(classifier, photo)
        if explained.overlay is None:
            raise gr.Error(TOO_OLD, print_exception=False)
        return explained.overlay

    with interface:
        photo = PhotoUpload(type="filepath", label="Bird photo", visible=False)
        overlay = gr.Image(label="Where it looked", type="pil", format="png", visible=False)
        trigger = gr.Button("Explain", visible=False)
        trigger.click(explain, photo, overlay, api_name="explain", concurrency_id=_predict_slots(interface),
                      show_progress="hidden")


FEEDBACK_NOTICE = (
    "**Sending feedback keeps your photo.** Telling the model under the answer that it was right, which "
    "bird it is, or none of these stores your photo with your answer, to check and retrain the model. "
    "Don't send feedback on a photo you do not want kept."
)


def add_feedback_api(interface: gr.Interface, store: FeedbackStore) -> None:
    """``/feedback``: ``(photo, class name or "none of these")`` in, ``{"class": ...}`` out.

    The Interface's flag buttons take no class through the API (each is an undocumented event
    with its value fixed on the server), so API users get this event of their own, on hidden
    components. It shares the classifier's concurrency slots, so reports cannot decode more
    photos at once than predictions do. It answers what was stored and nothing else.
    """

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
        trigger.click(report, [photo, reported], stored, api_name="feedback", concurrency_id=_predict_slots(interface),
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


def unknown_verdict(class_count: int) -> str:
    """The headline for a photo unlike every class: short, and never a list of the classes
    (500 names would fill the panel; the bars under it name the nearest ones)."""
    return f"Not one of the {class_count} birds I know"


DIGITS = 4
"""Decimals of the answer's scores: a 0.01% step, finer than any difference that means something."""


def answer(prediction: Prediction, top_k: int, unknown_label: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two outputs: the label panel (top ``k`` scores) and the machine-readable verdict."""
    confidences = [{"label": name, "confidence": round(score, DIGITS)}
                   for name, score in list(prediction.scores.items())[:top_k]]
    outlier_score = prediction.outlier_score
    details = {
        "verdict": "unknown" if prediction.unknown else "known",
        "label": prediction.label,
        "confidence": round(prediction.confidence, DIGITS),
        "outlier_score": round(outlier_score, DIGITS) if outlier_score is not None else None,
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

"""The page: a photo in, the answer with where the model looked out, corrections under it;
a second tab for a bag of photos; the limits of the model and which model it is.

The layout reads top to bottom in :func:`build_demo`. The API is a set of events on hidden
components (:func:`_add_api`), so the page can change without changing what API clients call.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from bird_model.artifacts import ModelFolder
from bird_model.feedback import FeedbackStore
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.images import ImageError, read_header
from bird_model.inference import Classifier, Prediction
from bird_model.web.answers import CLASSIFIER_SLOTS, About, Answered, Predictor, caller_of
from bird_model.web.components import PhotoUpload, VerdictLabel
from bird_model.web.feedback import Corrections, FeedbackControls, add_feedback_api, render_feedback
from bird_model.web.text import LANGUAGES, Words, display_names, language_of, say, say_refusal

PAGE_OVERLAY_SIDE = 640
"""Longest side of the page's overlay, drawn over the photo as uploaded: twice the ~320 CSS pixels
it takes on a phone, so it stays sharp on a 2x screen (``/explain`` answers at the model's size)."""
TOO_OLD = ("This model cannot show where it looked: its model.tflite was converted before the overlay existed. "
           "Retrain it with the current train.py to get /explain.")
LISTED_CLASSES = 12
"""The description names every class up to this many; beyond, it names the first ones and a count."""
BATCH_PHOTOS = 20
"""Photos the "Several photos" tab and ``/predict_batch`` take at once: a card of a morning's
photos, and at most twenty photos' work (each through the same decoder and slots) per call."""
CSS = """
.subdued { opacity: 0.75; font-size: 0.95em; }
#overlay img { object-fit: contain; }
#examples .grid-wrap { min-height: 0; max-height: none; }
@media (max-width: 640px) {
  #feedback-buttons { display: none; }
  #examples .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  #examples .caption-label { white-space: normal; }
}
@media (min-width: 641px) { #feedback-compact { display: none; } }
"""
"""The page's own style: the closest birds of an unknown verdict subdued; the examples as tall
as their photos (Gradio's gallery keeps at least 320-450 px, an empty band under one row); on a
phone, examples two to a row so each photo and its caption stay readable, and the feedback
choices as one dropdown and one button instead of a column of buttons."""
SCROLL_TO_ANSWER = "() => document.getElementById('answer')?.scrollIntoView({behavior: 'smooth', block: 'start'})"
"""After Submit on a phone the answer is a screen below the photo: bring it into view."""


def build_demo(
    classifier: Classifier,
    top_k: int,
    about: About,
    on_prediction: Callable[[str, Prediction], None] | None = None,
    delete_cache: tuple[int, int] | None = None,
    feedback: FeedbackStore | None = None,
    words: Words | None = None,
) -> gr.Blocks:
    """The page and its API for ``classifier``; ``about`` says which model it is.

    ``on_prediction`` sees every served prediction before its answer is sent. ``delete_cache``
    is Gradio's (every, older than) sweep of uploaded files. With ``feedback``, visitors can
    correct an answer (:mod:`bird_model.web.feedback`). The page's fixed text is made through
    ``words``, whose table the caller hands to ``launch(i18n=words.i18n())``.
    """
    words = words or Words()
    folder = classifier.folder
    predictor = Predictor(classifier, top_k, about.version, on_prediction)
    corrections = Corrections(feedback, predictor.answers) if feedback is not None else None
    names = {language: display_names(folder, language) for language in LANGUAGES}

    with gr.Blocks(title=words("title"), delete_cache=delete_cache) as demo:
        gr.Markdown(words.made("description", {language: description(names[language], language, corrections is not None)
                                               for language in LANGUAGES}))
        with gr.Tabs():
            with gr.Tab(words("tab_one")):
                with gr.Row():
                    with gr.Column():
                        photo = PhotoUpload(type="filepath", label=words("photo"),
                                            sources=["upload", "webcam", "clipboard"])
                        with gr.Row():
                            gr.ClearButton(photo, value=words("clear"))
                            submit = gr.Button(words("submit"), variant="primary")
                    with gr.Column(elem_id="answer"):
                        label = VerdictLabel(num_top_classes=predictor.top_k, label=words("answer"))
                        closest = gr.Markdown(visible=False, elem_classes=["subdued"])
                        overlay = gr.Image(label=words("overlay"), type="pil", interactive=False, visible=False,
                                           elem_id="overlay")
                        controls = (render_feedback(corrections, photo, words, names)
                                    if corrections is not None else None)
                        with gr.Accordion(words("details"), open=False):
                            gr.Markdown(words("details_help"))
                            details = gr.JSON(label="/predict", show_label=True)
                if examples := folder.examples():
                    # A gallery rather than Interface's examples: those show either the photos or
                    # their labels, and a visitor needs both to know what each class looks like.
                    gallery = gr.Gallery([(str(path), folder.example_class(path)) for path in examples],
                                         label=words("examples"), columns=min(len(examples), 4), height="auto",
                                         allow_preview=False, object_fit="contain", elem_id="examples")
                    gallery.select(_picked, None, photo, api_visibility="private", show_progress="hidden")
            with gr.Tab(words("tab_many")):
                batch_in = gr.File(file_count="multiple", file_types=list(SUPPORTED_EXTENSIONS),
                                   label=words("batch_photos", count=BATCH_PHOTOS))
                run_batch = gr.Button(words("batch_run"), variant="primary")
                table = gr.Dataframe(label=words("batch_table"), interactive=False, wrap=True)
                table_csv = gr.File(label=words("batch_csv"), interactive=False)
        gr.Markdown(words.made("limits", {language: limits_note(folder, names[language], language)
                                          for language in LANGUAGES}))
        gr.Markdown(words.made("footer", {language: footer(about, language) for language in LANGUAGES}),
                    elem_classes=["subdued"])

        answer_outputs = [label, closest, details, overlay, *_feedback_outputs(controls)]

        def show_answer(photo_path: str | None, request: gr.Request) -> list[Any]:
            language = language_of(request)
            answered = predictor.predict(photo_path, caller_of(request), language, PAGE_OVERLAY_SIDE)
            shown = page_view(answered, predictor.top_k, names[language], language)
            return shown + (list(controls.after_answer(answered.prediction, language)) if controls else [])

        submit.click(show_answer, photo, answer_outputs, api_visibility="private", concurrency_id=CLASSIFIER_SLOTS,
                     show_progress="minimal").then(None, js=SCROLL_TO_ANSWER)
        # A new photo (or none) makes the last answer stale: it goes, with its overlay and choices.
        photo.change(lambda: _stale(controls), None, answer_outputs, api_visibility="private", show_progress="hidden",
                     concurrency_id="page", concurrency_limit=None)
        # A file the browser cannot show leaves a broken-image icon in the input: say at once
        # what is wrong with it (the header is enough to know) and empty the input.
        photo.upload(_check_header, photo, None, api_visibility="private", show_progress="hidden",
                     concurrency_id="page", concurrency_limit=None
                     ).failure(lambda: None, None, photo, api_visibility="private")

        def classify_batch(paths: list[str] | None, request: gr.Request) -> tuple[dict[str, list[Any]], str]:
            return batch_rows(predictor, paths, caller_of(request), language_of(request), names)

        run_batch.click(classify_batch, batch_in, [table, table_csv], api_name="predict_batch",
                        concurrency_id=CLASSIFIER_SLOTS)
        _add_api(predictor, corrections, about)
    return demo


def page_view(answered: Answered, top_k: int, names: dict[str, str], language: str) -> list[Any]:
    """The answer as the page shows it: a known bird with its bars and overlay, or an unknown
    verdict that leads, with the closest birds named as such, subdued, and no overlay (it would
    show where the model looked for a bird that is not there)."""
    prediction = answered.prediction
    top = list(prediction.scores.items())[:top_k]
    if prediction.unknown:
        listed = ", ".join(f"{names.get(name, name)} ({score:.0%})" for name, score in top)
        return [{"label": say(language, "unknown", count=len(prediction.scores)), "confidences": []},
                gr.Markdown(say(language, "closest", names=listed), visible=True),
                answered.details, gr.Image(None, visible=False)]
    bars = [{"label": names.get(name, name), "confidence": item["confidence"]}
            for (name, _), item in zip(top, answered.label["confidences"])]
    return [{"label": names.get(prediction.label, prediction.label), "confidences": bars},
            gr.Markdown(visible=False), answered.details, _overlay_update(answered.overlay)]


def batch_rows(predictor: Predictor, paths: list[str] | None, caller: str, language: str,
               names: dict[str, dict[str, str]]) -> tuple[dict[str, list[Any]], str]:
    """One row per photo (name, verdict, closest bird, confidence, problem), and the same as a CSV file.

    Each photo is answered like a single one (and logged); a photo that cannot be read gets
    its message in its row rather than failing the others.
    """
    if not paths:
        raise gr.Error(say(language, "batch_none", count=BATCH_PHOTOS), print_exception=False)
    if len(paths) > BATCH_PHOTOS:
        raise gr.Error(say(language, "batch_too_many", count=BATCH_PHOTOS, sent=len(paths)), print_exception=False)
    shown = names[language]
    rows: list[list[Any]] = []
    for path in paths:
        try:
            answered = predictor.predict(path, caller, language)
        except gr.Error as error:
            rows.append([Path(path).name, say(language, "verdict_error"), "", None, str(error.message)])
            continue
        prediction = answered.prediction
        verdict = say(language, "verdict_unknown" if prediction.unknown else "verdict_known")
        rows.append([Path(path).name, verdict, shown.get(prediction.label, prediction.label),
                     round(prediction.confidence, 4), ""])
    headers = [say(language, key) for key in ("col_photo", "col_verdict", "col_class", "col_confidence", "col_problem")]
    with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="birds-", delete=False, newline="",
                                     encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(headers)
        writer.writerows(rows)
    return {"headers": headers, "data": rows}, file.name


def _add_api(predictor: Predictor, corrections: Corrections | None, about: About) -> None:
    """``/predict``, ``/explain``, ``/feedback`` and ``/info`` on hidden components, in the current Blocks."""
    photo = PhotoUpload(type="filepath", label="Bird photo", visible=False)
    label = VerdictLabel(num_top_classes=predictor.top_k, label="Answer", visible=False)
    details = gr.JSON(label="Details", visible=False)
    gr.Button("Predict", visible=False).click(predictor.api, photo, [label, details], api_name="predict",
                                              concurrency_id=CLASSIFIER_SLOTS, show_progress="hidden")

    def explain(photo_path: str | None, request: gr.Request) -> Image.Image:
        """``/explain``: where the model looked for its top class (a model too old to say: :data:`TOO_OLD`)."""
        if not predictor.classifier.explains:
            raise gr.Error(TOO_OLD, print_exception=False)
        answered = predictor.predict(photo_path, caller_of(request))
        if answered.overlay is None:
            raise gr.Error(TOO_OLD, print_exception=False)
        return answered.overlay

    overlay = gr.Image(label="Where it looked", type="pil", format="png", visible=False)
    gr.Button("Explain", visible=False).click(explain, photo, overlay, api_name="explain",
                                              concurrency_id=CLASSIFIER_SLOTS, show_progress="hidden")
    if corrections is not None:
        add_feedback_api(corrections)
    info = gr.JSON(label="Model", visible=False)
    answer_info = about.info(predictor.classifier)
    gr.Button("Info", visible=False).click(lambda: answer_info, None, info, api_name="info",
                                           concurrency_id="page", concurrency_limit=None, show_progress="hidden")


def _feedback_outputs(controls: FeedbackControls | None) -> list[gr.components.Component]:
    return controls.outputs() if controls is not None else []


def _stale(controls: FeedbackControls | None) -> list[Any]:
    hidden = [None, gr.Markdown(visible=False), None, gr.Image(None, visible=False)]
    return hidden + (controls.hidden() if controls is not None else [])


def _overlay_update(overlay: Image.Image | None) -> gr.Image:
    return gr.Image(overlay, visible=overlay is not None)


def _picked(selected: gr.SelectData) -> str:
    """The clicked example's copy in Gradio's cache (the model folder itself is blocked)."""
    return selected.value["image"]["path"]


def _check_header(photo: str | None, request: gr.Request) -> None:
    if photo is None:
        return
    try:
        read_header(photo)
    except ImageError as error:
        raise gr.Error(say_refusal(error, language_of(request)), print_exception=False) from error


def description(names: dict[str, str], language: str, feedback: bool) -> str:
    """The page's heading: what it is, the birds it knows (the first few of many), and, with
    feedback on, that sending feedback keeps the photo."""
    shown = list(names.values())
    if len(shown) <= LISTED_CLASSES:
        listed = ", ".join(shown[:-1]) + f" {say(language, 'or')} {shown[-1]}" if len(shown) > 1 else shown[0]
        knows = say(language, "knows", count=len(shown), names=listed)
    else:
        knows = say(language, "knows_many", count=len(shown), names=", ".join(shown[:LISTED_CLASSES - 2]),
                    rest=len(shown) - LISTED_CLASSES + 2)
    text = f"# {say(language, 'title')}\n\n{say(language, 'intro')} {knows}"
    return text + (f"\n\n{say(language, 'feedback_notice')}" if feedback else "")


def limits_note(folder: ModelFolder, names: dict[str, str], language: str) -> str:
    """"What this model knows and its limits", from the model folder's config and metrics."""
    validation = folder.metrics.validation
    trained_on = folder.facts.training_photos
    weights = folder.facts.base_weights or say(language, "limits_scratch")
    classes = ", ".join(names.values())
    if len(folder.classes) > LISTED_CLASSES:
        classes = f"<details><summary>{say(language, 'limits_all', count=len(folder.classes))}</summary>{classes}</details>"
    return "\n".join([
        f"### {say(language, 'limits_title')}",
        f"- {say(language, 'limits_knows', count=len(folder.classes), names=classes)}",
        f"- {say(language, 'limits_trained', count=trained_on, weights=weights)}",
        f"- {say(language, 'limits_accuracy', accuracy=f'{validation.accuracy:.1%}', count=validation.count)}",
        f"- {say(language, 'limits_limits', size=folder.image_size)}",
    ])


def footer(about: About, language: str) -> str:
    """Which model answers: its name, the release tag it was promoted as, and its revision."""
    if about.tag:
        return say(language, "footer_tag", model=about.version, tag=about.tag)
    return say(language, "footer", model=about.version)

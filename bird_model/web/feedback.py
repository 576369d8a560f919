"""Visitors' corrections: the page's buttons under an answer and the ``/feedback`` API event.

A correction is accepted only for an answer this caller was served for this very photo in
the last hour (:class:`bird_model.web.answers.RecentAnswers`), so no label is stored for a
photo nobody classified, and the stored record pairs what the visitor said with what the
visitor saw. Storing, the per-caller limit and the storage cap are the store's
(:class:`bird_model.feedback.FeedbackStore`). Every event here runs in Gradio's queue under
:data:`~bird_model.web.answers.FEEDBACK_SLOTS`: no number of reports can starve predictions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from bird_model.feedback import NONE_OF_THESE, FeedbackError, FeedbackStore, Receipt
from bird_model.images import ImageError, read_header
from bird_model.inference import Prediction
from bird_model.web.answers import FEEDBACK_AT_ONCE, FEEDBACK_SLOTS, RecentAnswers, caller_of
from bird_model.web.components import PhotoUpload
from bird_model.web.text import LANGUAGES, Words, language_of, say, say_refusal

RIGHT = "\x00right"
"""The page's "Right" (never a class name: those cannot hold NUL), resolved to the answer shown."""
CLASS_BUTTONS = 8
"""Up to this many classes, each gets its own button; beyond, a wall of buttons would bury the
page (500 species), so the class is picked from a searchable dropdown instead (and always on a
phone's narrow screen: the page's CSS swaps the two)."""
NO_ANSWER = say("en", "no_answer")


class Corrections:
    """Checks a correction against the caller's recent answer and hands it to the store."""

    def __init__(self, store: FeedbackStore, answers: RecentAnswers) -> None:
        self.store, self.answers = store, answers

    def submit(self, photo: str | None, reported: str | None, caller: str, via: str,
               language: str = LANGUAGES[0]) -> Receipt:
        """Store ``photo`` as ``reported`` (a class, :data:`NONE_OF_THESE` or :data:`RIGHT`).

        Raises :class:`FeedbackError` or ``ImageError`` with a message fit for the visitor.
        """
        if photo is None:
            raise FeedbackError(say(language, "no_photo"))
        if reported != RIGHT:
            self.store.check_choice(reported)
        upload = Path(photo).read_bytes()
        read_header(upload)  # a file that is no photo gets the decoder's own message, as on /predict
        prediction = self.answers.find(caller, hashlib.sha256(upload).hexdigest())
        if prediction is None:
            raise FeedbackError(say(language, "no_answer"))
        if reported == RIGHT:
            reported = NONE_OF_THESE if prediction.unknown else prediction.label
            self.store.check_choice(reported)
        return self.store.report(upload, reported, answer=prediction, caller=caller, via=via)

    def api(self, photo: str | None, reported: str | None, request: gr.Request) -> dict[str, str]:
        """``/feedback``: ``(photo, class name or "none of these")`` in, ``{"class": ...}`` out."""
        try:
            receipt = self.submit(photo, reported, caller_of(request), via="api")
        except (ImageError, FeedbackError) as error:
            raise gr.Error(str(error), print_exception=False) from error
        return {"class": receipt.reported}

    def from_page(self, choice: str) -> Callable[[str | None, gr.Request], str]:
        """The handler of one of the page's choices: stores, then says in words what was kept."""

        def press(photo: str | None, request: gr.Request) -> str:
            language = language_of(request)
            try:
                receipt = self.submit(photo, choice, caller_of(request), "page", language)
            except (ImageError, FeedbackError) as error:
                raise gr.Error(say_refusal(error, language), print_exception=False) from error
            return confirmation(receipt, language)

        return press


def confirmation(receipt: Receipt, language: str) -> str:
    """What the page says once a report is on disk (or was already)."""
    said = say(language, "said_none") if receipt.reported == NONE_OF_THESE else receipt.reported
    return say(language, "saved" if receipt.new else "already_saved", said=said)


@dataclass(frozen=True)
class FeedbackControls:
    """The choices under an answer; hidden until there is one, hidden again when the photo changes."""

    group: gr.Column
    right: gr.Button
    status: gr.Markdown

    def outputs(self) -> list[gr.components.Component]:
        return [self.group, self.right, self.status]

    def after_answer(self, prediction: Prediction, language: str) -> list[Any]:
        """Shown, with "Right" saying what it agrees with: on an unknown verdict, none of these birds."""
        right = say(language, "right_none" if prediction.unknown else "right")
        return [gr.Column(visible=True), gr.Button(right), gr.Markdown("")]

    @staticmethod
    def hidden() -> list[Any]:
        return [gr.Column(visible=False), gr.Button(), gr.Markdown("")]


def render_feedback(corrections: Corrections, photo: gr.components.Component, words: Words,
                    names: dict[str, dict[str, str]]) -> FeedbackControls:
    """The page's choices, in the current Blocks context, wired to ``corrections``.

    Up to :data:`CLASS_BUTTONS` classes: "Right", one button per class and "None of these";
    beyond, and on a phone whatever the count, "Right", "None of these" and a dropdown with
    one send button.
    """
    storable = corrections.store.storable
    with gr.Column(visible=False) as group:
        gr.Markdown(words("was_it_right"))
        with gr.Row():
            right = gr.Button(words("right"), size="sm")
            none = gr.Button(words("none"), size="sm")
        buttons = []
        if len(storable) <= CLASS_BUTTONS:
            with gr.Row(elem_id="feedback-buttons"):
                buttons = [(gr.Button(words.made("it_is", {language: say(language, "it_is",
                                                                          name=names[language][name])
                                                           for language in LANGUAGES}), size="sm"), name)
                           for name in storable]
        with gr.Row(elem_id="feedback-compact" if buttons else None, equal_height=True):
            chosen = gr.Dropdown(storable, value=None, label=words("pick_bird"), scale=3)
            send = gr.Button(words("send_bird"), size="sm", scale=1)
        status = gr.Markdown("", elem_id="feedback-status")
    for button, choice in [(right, RIGHT), (none, NONE_OF_THESE), *buttons]:
        button.click(corrections.from_page(choice), photo, status, api_visibility="private",
                     concurrency_id=FEEDBACK_SLOTS, concurrency_limit=FEEDBACK_AT_ONCE, show_progress="minimal")

    def send_chosen(photo_path: str | None, name: str | None, request: gr.Request) -> str:
        return corrections.from_page(name or "")(photo_path, request)

    send.click(send_chosen, [photo, chosen], status, api_visibility="private",
               concurrency_id=FEEDBACK_SLOTS, concurrency_limit=FEEDBACK_AT_ONCE, show_progress="minimal")
    return FeedbackControls(group, right, status)


def add_feedback_api(corrections: Corrections) -> None:
    """``/feedback`` on hidden components, in the current Blocks context (the page's buttons are
    private events; API callers name the class themselves)."""
    photo = PhotoUpload(type="filepath", label="Bird photo", visible=False)
    reported = gr.Textbox(label=f"Class (or {NONE_OF_THESE})", visible=False)
    stored = gr.JSON(label="Stored", visible=False)
    trigger = gr.Button("Send feedback", visible=False)
    trigger.click(corrections.api, [photo, reported], stored, api_name="feedback", concurrency_id=FEEDBACK_SLOTS,
                  concurrency_limit=FEEDBACK_AT_ONCE, show_progress="hidden")

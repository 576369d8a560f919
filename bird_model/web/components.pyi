"""The two Gradio components the page adapts, each for one reason stated in its docstring."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components.label import LabelData

from gradio.events import Dependency

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
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


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
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component
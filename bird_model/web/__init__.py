"""The Gradio demo: a photo in, an answer out; visitors' corrections back; the operator's tab.

- :mod:`~bird_model.web.page`: the page's layout and its events (``build_demo``).
- :mod:`~bird_model.web.answers`: the prediction itself (:class:`~bird_model.web.answers.Predictor`),
  the words of an answer, and the recent answers a correction must refer to.
- :mod:`~bird_model.web.feedback`: visitors' corrections, from the page's buttons and ``/feedback``.
- :mod:`~bird_model.web.components`: the two Gradio components we adapt (raw uploads, verdict headline).
- :mod:`~bird_model.web.text`: every word of the page, in English and Indonesian.
- :mod:`~bird_model.web.uploads`: the upload cache's size budget.
- :mod:`~bird_model.web.monitoring`: the operator's Monitoring tab.

Every event runs in Gradio's queue (app.py closes the REST routes that skip it): the model's
answers under :data:`~bird_model.web.answers.CLASSIFIER_SLOTS`, corrections under
:data:`~bird_model.web.answers.FEEDBACK_SLOTS`, one at a time, so reports never wait in front
of a prediction.
"""

from bird_model.web.answers import About, answer, unknown_verdict
from bird_model.web.monitoring import Dashboard, with_monitoring
from bird_model.web.page import build_demo
from bird_model.web.text import Words

__all__ = ["About", "Dashboard", "Words", "answer", "build_demo", "unknown_verdict", "with_monitoring"]

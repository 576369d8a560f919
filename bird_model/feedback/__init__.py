"""Visitors' corrections: stored pending review, reviewed by the operator, then trained on.

- :mod:`.store`: a report checked, bounded (per caller and in total) and kept as pending
  (:class:`FeedbackStore`);
- :mod:`.review`: the operator's decisions, accept (training reads it) or reject (deleted);
- :mod:`.__main__`: the review command, ``python -m bird_model.feedback list | accept | reject``.

Where everything lies in the log folder is :mod:`bird_model.logfolder`; what visitors report
about the model is counted for the monitoring report by :mod:`bird_model.monitoring.visitors`.
The page's buttons and ``/feedback`` are wired in :mod:`bird_model.web`.
"""

from bird_model.feedback.store import FeedbackError, FeedbackStore, Receipt, feedback_record, folder_name_problem
from bird_model.logfolder import NONE_OF_THESE
# TRANSITIONAL: web.py imports it from here until it takes it from bird_model.monitoring.
from bird_model.monitoring.visitors import read_visitor_reports

__all__ = [
    "NONE_OF_THESE", "FeedbackError", "FeedbackStore", "Receipt", "feedback_record", "folder_name_problem",
    "read_visitor_reports",
]

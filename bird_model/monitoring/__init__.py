"""Watching a served model: the prediction log, what "normal" looks like, and drift reports.

A model is judged once, on its validation photos, and then served for months while the
photos people send change. This package keeps the evidence and compares it with that
judgement, one module per step:

- :mod:`.log`: every served prediction becomes one JSON line (:func:`prediction_record`),
  written by a background thread (:class:`PredictionLog`), optionally mirrored to the Hub;
- :mod:`.baseline`: ``baseline.json`` (:class:`Baseline`), saved by training: the training
  class counts and validation histograms, i.e. what the log should look like;
- :mod:`.reading`: a log counted into the baseline's bins (:func:`read_log`, :class:`LogSummary`);
- :mod:`.report`: drift statistics, findings in plain words, alarms and the text report (:func:`build_report`);
- :mod:`.visitors`: visitors' feedback records counted into reported accuracy (:func:`read_visitor_reports`);
- :mod:`.plots`: the report's figures (:func:`save_figures`, :data:`FIGURE_NAMES`);
- :mod:`.__main__`: the command, ``python -m bird_model.monitor`` (or ``bird_model.monitoring``).

The app's Monitoring tab (its cache and Gradio parts) is in :mod:`bird_model.web`.
The names below are re-exported so callers import from ``bird_model.monitoring``.
"""

from bird_model.monitoring.baseline import Baseline, compute_baseline, read_baseline
from bird_model.monitoring.log import LogSettings, ModelIdentity, PredictionLog, open_log, prediction_record
from bird_model.monitoring.plots import FIGURE_NAMES, report_figures, save_figures
from bird_model.monitoring.reading import MAX_TIMELINE_BUCKETS, LogSummary, Timeline, parse_time, read_log
from bird_model.monitoring.drift import js_distance, psi
from bird_model.monitoring.report import MIN_RECORDS, Report, build_report, format_report, report_lines
from bird_model.monitoring.visitors import VisitorReports, read_visitor_reports

__all__ = [
    "FIGURE_NAMES", "MAX_TIMELINE_BUCKETS", "MIN_RECORDS", "Baseline", "LogSettings", "LogSummary", "ModelIdentity",
    "PredictionLog", "Report", "Timeline", "build_report", "compute_baseline", "format_report", "js_distance",
    "VisitorReports", "open_log", "parse_time", "prediction_record", "psi", "read_baseline", "read_log",
    "read_visitor_reports", "report_figures", "report_lines", "save_figures",
]

"""The operator's Monitoring tab: the monitor command's report, cached, beside the classifier."""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr

from bird_model.artifacts import ModelFolder, ModelFolderError
from bird_model.monitoring import (
    FIGURE_NAMES,
    ModelIdentity,
    build_report,
    read_baseline,
    read_log,
    read_visitor_reports,
    report_lines,
    save_figures,
)

MonitoringView = Callable[[], tuple[str, list[str | None]]]
"""The monitoring tab's content: a Markdown summary and one PNG file per ``FIGURE_NAMES``."""

DASHBOARD_DAYS = 7
"""The app's tab reports the last week: recent enough that a new shift is not diluted by
months of normal traffic, and a bounded read however long the app has been serving."""
DASHBOARD_SECONDS = 10.0
"""The tab recomputes at most this often and shows the last result in between. Drawing and
encoding the four figures costs about 0.4 s of CPU, which holds the interpreter lock while
predictions wait; so even constant refreshing costs at most ~4% of the server's time."""


def with_monitoring(page: gr.Blocks, view: MonitoringView) -> gr.Blocks:
    """The classifier and a "Monitoring" tab, which computes its view only when opened or refreshed.

    For the operator only (app.py's ``--monitoring``): a private event is still callable
    through Gradio's queue by anyone who reads the page's config. Its events share one
    concurrency slot of their own, so at most one report is computed at a time and the
    classifier's queue never waits for it; the API stays as the page defines it.
    """
    with gr.Blocks(title=page.title, delete_cache=page.delete_cache) as demo:
        with gr.Tabs():
            with gr.Tab("Classify"):
                page.render()
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

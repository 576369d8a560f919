"""The report's pictures: matplotlib on an Agg canvas (no pyplot global state, safe in server threads)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bird_model.monitoring.report import Comparison, Report, duration_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def report_figures(report: Report) -> dict[str, Figure]:
    """One figure per view, named as in :data:`FIGURE_NAMES`, drawn on an Agg canvas (thread-safe)."""
    return {name: draw(report) for name, draw in _VIEWS.items()}


def save_figures(report: Report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in report_figures(report).items():
        paths.append(folder / f"{name}.png")
        figure.savefig(paths[-1], dpi=100)
    return paths


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _timeline_figure(report: Report) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    if report.timeline:
        times, counts = zip(*report.timeline)
        axes.bar(times, counts, width=0.9 * report.bucket / timedelta(days=1), align="edge", color="tab:blue")
        figure.autofmt_xdate()
    axes.set_title(f"Predictions per {duration_text(report.bucket)} (UTC): when the app was used\n"
                   "Normal: your usual daily pattern; a sudden drop can mean the app or its log stopped", fontsize=9)
    axes.set_ylabel("predictions")
    return figure


def _comparison_figure(comparison: Comparison, title: str, normal: str, reference: str) -> Figure:
    """Grey bars: what normal looks like; orange: what was served. The title says which is which."""
    from matplotlib.ticker import PercentFormatter

    figure = _figure()
    axes = figure.add_subplot()
    rows = comparison.rows()
    positions = np.arange(len(rows))
    axes.bar(positions - 0.2, [row.baseline for row in rows], width=0.4, label=f"normal ({reference})",
             color="tab:gray")
    axes.bar(positions + 0.2, [row.served for row in rows], width=0.4, label="served", color="tab:orange")
    rotate = len(rows) > 4 or max(len(row.name) for row in rows) > 8
    axes.set_xticks(positions, [row.name for row in rows], rotation=30 if rotate else 0,
                    ha="right" if rotate else "center", fontsize=8)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylabel("share of answers")
    axes.set_title(f"{title}\nNormal: the orange bars about as high as the grey ones ({normal})", fontsize=9)
    axes.legend(fontsize=8)
    return figure


_VIEWS: dict[str, Callable[[Report], Figure]] = {
    "requests": _timeline_figure,
    "classes": lambda report: _comparison_figure(
        report.classes, "Which birds the model answers", "the training photos' class shares", "training"
    ),
    "confidence": lambda report: _comparison_figure(
        report.confidence, "How sure the model is (its top score)", "as sure as on the validation photos", "validation"
    ),
    "outlier_score": lambda report: _comparison_figure(
        report.outlier, "How unlike the training photos they are (last bar: called unknown)",
        "spread like the validation photos", "validation",
    ),
}
FIGURE_NAMES = tuple(_VIEWS)
"""The report's views in display order; each is saved as ``NAME.png``."""

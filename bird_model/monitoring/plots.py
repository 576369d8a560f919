"""The report's pictures: matplotlib on an Agg canvas (no pyplot global state, safe in server threads)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bird_model.monitoring.report import Comparison, Report, duration_text, shares

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
    axes.set_title(f"Predictions per {duration_text(report.bucket)} (UTC)")
    axes.set_ylabel("predictions")
    return figure


def _comparison_figure(comparison: Comparison, title: str, reference: str, rotate: bool = False) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    positions = np.arange(len(comparison.bins))
    baseline = shares(comparison.baseline, 0.0)
    served = shares(comparison.served, 0.0) if sum(comparison.served) else np.zeros(len(positions))
    axes.bar(positions - 0.2, baseline, width=0.4, label=reference, color="tab:gray")
    axes.bar(positions + 0.2, served, width=0.4, label="served", color="tab:orange")
    axes.set_xticks(positions, comparison.bins, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    axes.set_ylabel("share")
    axes.set_title(f"{title}: PSI {comparison.psi:.2f}, JS {comparison.js:.2f}")
    axes.legend()
    return figure


_VIEWS: dict[str, Callable[[Report], Figure]] = {
    "requests": _timeline_figure,
    "classes": lambda report: _comparison_figure(report.classes, "Predicted class", "training", rotate=True),
    "confidence": lambda report: _comparison_figure(report.confidence, "Top confidence", "validation"),
    "outlier_score": lambda report: _comparison_figure(
        report.outlier, "Outlier score (last bin: unknown)", "validation", rotate=True
    ),
}
FIGURE_NAMES = tuple(_VIEWS)
"""The report's views in display order; each is saved as ``NAME.png``."""

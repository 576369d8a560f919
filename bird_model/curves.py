"""The training curves picture (``training_curves.png``): loss and accuracy per epoch, from ``history.json``.

Both phases share one epoch axis, with a line where fine-tuning starts, so a reader sees
at a glance whether validation loss still fell when training stopped (stopped too early),
rose while training loss fell (over-fitting), or jumped when the base was unfrozen. A green
line marks each phase's kept epoch (``kept_epoch``): the weights the model has are that
epoch's, not the last one's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PHASES = ("phase1", "phase2")
"""``history.json``'s phases in training order (phase 2 is absent when it was skipped)."""

PANELS = (("loss", "Loss (cross-entropy, lower is better)"), ("accuracy", "Accuracy (higher is better)"))


def save_training_curves(histories: dict[str, dict[str, Any]], path: Path) -> None:
    """Draw train and validation loss and accuracy over both phases as one PNG.

    Matplotlib on an Agg canvas, without pyplot's global state (safe in any thread).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    phases = [histories[name] for name in PHASES if histories.get(name)]
    lengths = [len(phase.get("loss", [])) for phase in phases]
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (metric, title) in zip(figure.subplots(1, 2), PANELS):
        for key, label, style in ((metric, "training", "-"), (f"val_{metric}", "validation", "--")):
            values = np.concatenate([phase.get(key, [np.nan] * length) for phase, length in zip(phases, lengths)])
            axes.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3, label=label)
        for number, (phase, offset) in enumerate(zip(phases, np.cumsum([0, *lengths])), start=1):
            if phase.get("kept_epoch"):
                axes.axvline(offset + phase["kept_epoch"], color="tab:green", alpha=0.5,
                             label="kept epoch" if number == 1 else "_kept epoch")  # one legend entry
        if len(lengths) > 1:
            axes.axvline(lengths[0] + 0.5, color="grey", linestyle=":")
            axes.text(lengths[0] + 0.5, 0.5, "fine-tuning starts ", transform=axes.get_xaxis_transform(),
                      rotation=90, ha="right", va="center", color="dimgrey", fontsize=8)
        axes.set_title(title)
        axes.set_xlabel("epoch (phase 1: head only, then phase 2: fine-tuning)" if len(lengths) > 1 else "epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.savefig(path, dpi=100)

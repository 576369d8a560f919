"""The drift report: a log summary against a baseline, its alarms and its plain text.

Alarms and thresholds are explained at :data:`PSI_ALARM`, :data:`JS_ALARM` and
:data:`RATE_FACTOR` (and in README.md, "Monitoring").
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bird_model.monitoring.baseline import Baseline
from bird_model.monitoring.reading import LogSummary

if TYPE_CHECKING:
    from bird_model.feedback import VisitorReports

MIN_RECORDS = 50
RECORDS_PER_CLASS = 10
"""No alarm below max(MIN_RECORDS, RECORDS_PER_CLASS x classes) predictions. Sampling noise
alone gives a PSI of about (K - 1) / n and a JS distance of about sqrt((K - 1) / (8 ln2 n))
for K classes and n predictions; with n >= 10 K these stay near 0.1, under both alarms,
however many classes the model has. Under 50, one photo moves a rate by 2 points."""
PSI_ALARM = 0.25
"""Population stability index of the predicted classes against training: the usual reading is
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a shift worth acting on."""
JS_ALARM = 0.2
"""Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint) of the predicted classes. Noise
alone averages 0.1 at the fewest predictions that may alarm (see RECORDS_PER_CLASS), so 0.1
would cry wolf. For 4 balanced classes, one class rising from 25% to 50% of the answers gives
JS 0.22 and PSI 0.27: both alarms fire at about the same shift."""
RATE_FACTOR = 3.0
RATE_MARGIN = 0.10
"""A rate (unknown or low-confidence answers) alarms when it is over RATE_FACTOR times its
validation rate *and* over it by RATE_MARGIN: the factor alone would alarm on 3% vs 1%, the
margin alone would ignore a rate going from 0.5% to 10%."""
SMOOTHING = 0.5
"""Pseudo-count added to every bin before the PSI's logarithm: an empty bin (common with a
few dozen validation photos) would otherwise make the index infinite."""


def psi(observed: list[int], expected: list[int], smoothing: float = SMOOTHING) -> float:
    """Population stability index: sum of (p - q) ln(p / q) over bins, both sides smoothed."""
    p, q = shares(observed, smoothing), shares(expected, smoothing)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(observed: list[int], expected: list[int]) -> float:
    """Jensen-Shannon distance in base 2: the square root of the divergence, in [0, 1]."""
    p, q = shares(observed, 0.0), shares(expected, 0.0)
    middle = (p + q) / 2
    divergence = (_kl(p, middle) + _kl(q, middle)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def shares(counts: list[int], smoothing: float) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64) + smoothing
    if values.sum() <= 0:
        raise ValueError("a distribution needs at least one count")
    return values / values.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


@dataclass(frozen=True)
class Comparison:
    """A served histogram beside its baseline, with both drift scores."""

    bins: list[str]
    served: list[int]
    baseline: list[int]
    psi: float
    js: float

    @classmethod
    def of(cls, bins: list[str], served: list[int], baseline: list[int]) -> Comparison:
        """Drift scores are NaN while nothing has been served: there is no shape to compare yet."""
        if sum(served) == 0:
            return cls(bins, served, baseline, math.nan, math.nan)
        return cls(bins, served, baseline, psi(served, baseline), js_distance(served, baseline))


@dataclass(frozen=True)
class Report:
    model: str
    count: int
    other_models: int
    unreadable: int
    timeline: list[tuple[datetime, int]]
    bucket: timedelta
    classes: Comparison
    confidence: Comparison
    outlier: Comparison
    low_confidence_share: float
    baseline_low_confidence_share: float
    unknown_share: float
    baseline_unknown_share: float
    checks: list[Check] = field(default_factory=list)
    visitors: VisitorReports | None = None
    """What visitors reported through the page or ``/feedback`` (None: not read)."""

    @property
    def alarms(self) -> list[Check]:
        return [check for check in self.checks if check.alarm]


@dataclass(frozen=True)
class Check:
    name: str
    alarm: bool
    message: str


def build_report(
    log: LogSummary, baseline: Baseline, model: str, visitors: VisitorReports | None = None
) -> Report:
    """``baseline`` is the served model's; ``model`` names the model in the text; ``visitors``
    adds their reported accuracy and its check."""
    classes = baseline.classes
    timeline, bucket = log.timeline.bars()
    report = Report(
        model=model,
        count=log.count,
        other_models=log.other_models,
        unreadable=log.unreadable,
        timeline=timeline,
        bucket=bucket,
        classes=Comparison.of(classes, [log.label_counts[name] for name in classes], baseline.training_class_counts),
        confidence=Comparison.of(
            _bin_names(baseline.confidence_edges), log.confidence_counts, baseline.validation_confidence_counts
        ),
        outlier=Comparison.of(
            _bin_names(baseline.outlier_edges), log.outlier_counts, baseline.validation_outlier_counts
        ),
        low_confidence_share=_rate(log.low_confidence, log.count),
        baseline_low_confidence_share=baseline.validation_low_confidence_share,
        unknown_share=_rate(log.unknown, log.count),
        baseline_unknown_share=baseline.expected_unknown_share,
        visitors=visitors,
    )
    return replace(report, checks=checks(report) + ([visitors.check()] if visitors is not None else []))


def checks(report: Report) -> list[Check]:
    """The alarms a scheduled job acts on; the confidence and outlier-score PSI are shown but
    do not alarm, because their validation histograms rest on a few dozen photos: the two
    rates test the same signals with far less noise."""
    needed = max(MIN_RECORDS, RECORDS_PER_CLASS * len(report.classes.bins))
    if report.count < needed:
        return [Check("enough data", False, f"{report.count} predictions; alarms need at least {needed}.")]
    drift = report.classes.psi > PSI_ALARM or report.classes.js > JS_ALARM
    return [
        Check(
            "class drift",
            drift,
            f"predicted classes vs training: PSI {report.classes.psi:.3f} (alarm > {PSI_ALARM}), "
            f"JS distance {report.classes.js:.3f} (alarm > {JS_ALARM})",
        ),
        _rate_check("unknown answers", report.unknown_share, report.baseline_unknown_share, "expected"),
        _rate_check("low confidence", report.low_confidence_share, report.baseline_low_confidence_share, "validation"),
    ]


def _rate_check(name: str, rate: float, baseline: float, source: str) -> Check:
    limit = max(RATE_FACTOR * baseline, baseline + RATE_MARGIN)
    return Check(
        name,
        rate > limit,
        f"{rate:.1%} of answers ({source} {baseline:.1%}; alarm over {limit:.1%} = "
        f"more than {RATE_FACTOR:g}x and {RATE_MARGIN * 100:.0f} points above)",
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _bin_names(edges: list[float]) -> list[str]:
    names = [f"{low:.3g}-{high:.3g}" for low, high in itertools.pairwise(edges)]
    return names[:-1] + [f">={edges[-2]:.3g}"]


def format_report(report: Report) -> str:
    """The plain-text report the monitor command prints (and the app's tab shows)."""
    alarms = [check.name for check in report.alarms]
    lines = [
        f"Model: {report.model}",
        (
            f"Predictions: {report.count} ({report.other_models} of other models and "
            f"{report.unreadable} unreadable lines ignored)"
        ),
        *_period(report),
        *_comparison_lines("Predicted class", "training", report.classes),
        *_comparison_lines("Top confidence", "validation", report.confidence),
        *_comparison_lines("Outlier score", "validation", report.outlier),
        (
            f"Low-confidence answers: {report.low_confidence_share:.1%} "
            f"(validation {report.baseline_low_confidence_share:.1%})"
        ),
        f"Unknown answers: {report.unknown_share:.1%} (expected {report.baseline_unknown_share:.1%})",
        *(report.visitors.lines() if report.visitors is not None else []),
        "Checks:",
        *(f"  {'ALARM' if check.alarm else 'ok':5}  {check.name}: {check.message}" for check in report.checks),
        f"{len(alarms)} alarm(s)" + (f": {', '.join(alarms)}" if alarms else ""),
    ]
    return "\n".join(lines)


def _period(report: Report) -> list[str]:
    if not report.timeline:
        return []
    start, end = report.timeline[0][0], report.timeline[-1][0] + report.bucket
    busiest = max(count for _, count in report.timeline)
    per = duration_text(report.bucket)
    mean = report.count / len(report.timeline)
    return [f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; per {per}: busiest {busiest}, mean {mean:.1f}"]


def _comparison_lines(title: str, reference: str, comparison: Comparison) -> list[str]:
    """A header with both drift scores, then one line per bin: served share, baseline share."""
    baseline = shares(comparison.baseline, 0.0)
    served = shares(comparison.served, 0.0) if sum(comparison.served) else [math.nan] * len(baseline)
    width = max(len(name) for name in comparison.bins)
    lines = [f"{title} (served vs {reference}): PSI {comparison.psi:.3f}, JS distance {comparison.js:.3f}"]
    rows = zip(comparison.bins, served, baseline)
    lines += [f"  {name:<{width}}  {mine:6.1%}  {theirs:6.1%}" for name, mine, theirs in rows]
    return lines


def duration_text(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"


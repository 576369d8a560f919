"""The drift report: a log summary against a baseline, its findings, alarms and plain text.

Each finding opens with one plain sentence ("Visitors send more macaw photos than training
had: 62% vs 25%"); its statistics follow. Alarms and thresholds are explained at
:data:`MIN_RECORDS`, :data:`MIN_EXPECTED`, :data:`PSI_ALARM`, :data:`JS_ALARM` and
:data:`RATE_FACTOR` (and in docs/monitoring.md); the statistics are :mod:`bird_model.monitoring.drift`'s.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bird_model.monitoring.baseline import Baseline
from bird_model.monitoring.drift import chi2_critical, g_statistic, js_distance, psi, shares
from bird_model.monitoring.reading import LogSummary

if TYPE_CHECKING:
    from bird_model.monitoring.visitors import VisitorReports

MIN_RECORDS = 50
"""No alarm on fewer predictions: under 50, one photo moves a rate by 2 points."""
MIN_EXPECTED = 5
"""Classes the training shares expect fewer than 5 times among the served predictions are
compared as one pooled group. With 500 classes and a few thousand predictions most classes
are seen 0-10 times, and their shares jump by whole multiples by chance alone: compared one
by one, PSI and JS distance grow like (classes - 1) / predictions and would alarm on pure
noise. 5 is Cochran's rule for the chi-square approximation that :data:`DRIFT_SIGNIFICANCE`
relies on; pooling keeps the comparison honest, and as predictions accumulate classes leave
the pool and are compared on their own. A class served at least 2 x MIN_EXPECTED times
stays on its own however rare it was in training, so a rare class that suddenly dominates
cannot hide in the pool; chance singles out a few rare classes that way too, but each holds
well under 1% of the answers, far below what the PSI/JS gate lets alarm."""
DRIFT_SIGNIFICANCE = 0.001
"""The class-mix alarm also needs the G-test (likelihood-ratio test of the served counts
against the training shares, over the pooled groups) to reject "nothing changed" at this
level: the test accounts for the number of predictions and groups, so sampling noise alarms
once in 1,000 reports whatever the class count, while PSI and JS alone only measure size."""
TOP_CLASSES = 10
"""Classes listed one by one when a model has more than TOP_CLASSES + 2 of them: those whose
share moved most; the rest are summed in one line, so a 500-class report stays readable."""
PSI_ALARM = 0.25
"""Population stability index of the predicted classes against training: the usual reading is
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a shift worth acting on."""
JS_ALARM = 0.2
"""Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint) of the predicted classes. For 4
balanced classes, one class rising from 25% to 50% of the answers gives JS 0.22 and PSI 0.27:
both alarms fire at about the same shift; with groups expected at least 5 times each, noise
alone stays under 0.2."""
RATE_FACTOR = 3.0
RATE_MARGIN = 0.10
"""A rate (unknown or low-confidence answers) alarms when it is over RATE_FACTOR times its
validation rate *and* over it by RATE_MARGIN: the factor alone would alarm on 3% vs 1%, the
margin alone would ignore a rate going from 0.5% to 10%."""
def percent(share: float) -> str:
    """Whole percent from 10% up, one decimal below it: "62%", "2.4%"."""
    return f"{share:.0%}" if share >= 0.095 else f"{share:.1%}"


@dataclass(frozen=True)
class Comparison:
    """A served histogram beside its baseline, with both drift scores (None while nothing was served)."""

    bins: list[str]
    served: list[int]
    baseline: list[int]
    psi: float | None
    js: float | None

    @classmethod
    def of(cls, bins: list[str], served: list[int], baseline: list[int]) -> Comparison:
        if sum(served) == 0:
            return cls(bins, served, baseline, None, None)
        return cls(bins, served, baseline, psi(served, baseline), js_distance(served, baseline))

    def scores(self) -> str:
        if self.psi is None or self.js is None:
            return "no predictions to compare yet"
        return f"PSI {self.psi:.3f}, JS distance {self.js:.3f}"

    def served_shares(self) -> np.ndarray:
        return shares(self.served, 0.0) if sum(self.served) else np.zeros(len(self.served))

    def baseline_shares(self) -> np.ndarray:
        return shares(self.baseline, 0.0)

    def pooled(self, minimum: float = MIN_EXPECTED) -> Comparison:
        """Bins expected under ``minimum`` times among the served counts and served under twice
        that, summed into one group (:data:`MIN_EXPECTED` says why); the others as they are."""
        expected = self.baseline_shares() * sum(self.served)
        alone = [expected[i] >= minimum or self.served[i] >= 2 * minimum for i in range(len(self.bins))]
        kept = [index for index in range(len(self.bins)) if alone[index]]
        rest = [index for index in range(len(self.bins)) if not alone[index]]
        bins, served, baseline = ([self.bins[i] for i in kept], [self.served[i] for i in kept],
                                  [self.baseline[i] for i in kept])
        if rest:
            bins.append(f"{len(rest)} rarer classes" if len(rest) > 1 else self.bins[rest[0]])
            served.append(sum(self.served[i] for i in rest))
            baseline.append(sum(self.baseline[i] for i in rest))
        return Comparison.of(bins, served, baseline)

    def rows(self, most: int = TOP_CLASSES) -> list[Row]:
        """One row per bin; beyond ``most + 2`` bins, the ``most`` whose share moved most
        (largest first) and one row summing the rest."""
        served, baseline = self.served_shares(), self.baseline_shares()
        every = [Row(name, float(s), float(b), count) for name, s, b, count
                 in zip(self.bins, served, baseline, self.served)]
        if len(every) <= most + 2:
            return every
        moved = sorted(every, key=lambda row: -abs(row.served - row.baseline))
        top, rest = moved[:most], moved[most:]
        summed = Row(f"{len(rest)} other classes", sum(r.served for r in rest), sum(r.baseline for r in rest),
                     sum(r.count for r in rest))
        return [*top, summed]


@dataclass(frozen=True)
class Row:
    """One line of a comparison: served share, baseline share and served count."""

    name: str
    served: float
    baseline: float
    count: int


@dataclass(frozen=True)
class Check:
    """One finding: ``finding`` is its plain sentence, ``message`` its statistics.

    ``needs`` = (have, need) while there is too little data to judge; ``alarm`` is then
    False, and ``far_off`` says whether the data so far would alarm.
    """

    name: str
    alarm: bool
    message: str
    finding: str = ""
    needs: tuple[int, int] | None = None
    far_off: bool = False

    @property
    def status(self) -> str:
        if self.needs is not None:
            return f"not enough data yet ({self.needs[0]} of {self.needs[1]})"
        return "ALARM" if self.alarm else "ok"

    def waiting(self, have: int, need: int) -> Check:
        """This check held back for lack of data, remembering whether it would have fired."""
        return replace(self, alarm=False, needs=(have, need), far_off=self.alarm)


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

    @property
    def headline(self) -> str:
        """One line for a person: the alarms' findings, or "too little data" (with anything
        already far off), or "No alarm" only when every rate was judged and is in bounds."""
        if self.alarms:
            return f"ALARM ({len(self.alarms)}): " + "; ".join(check.finding for check in self.alarms)
        far_off = "; ".join(check.finding for check in self.checks if check.far_off)
        so_far = f"; so far: {far_off}" if far_off else ""
        if self.count < MIN_RECORDS:
            return f"Too little data to judge yet ({self.count} of {MIN_RECORDS} predictions){so_far}"
        waiting = ", ".join(f"{check.name} ({check.needs[0]} of {check.needs[1]})"
                            for check in self.checks if check.needs is not None and check.needs[0] > 0)
        if waiting:
            return f"No alarm on what can be judged; too little data yet for {waiting}{so_far}"
        return "No alarm: the answers look like training and validation"


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
    rates test the same signals with far less noise. Below :data:`MIN_RECORDS` predictions
    each check says what it sees so far, without alarming."""
    if report.count == 0:
        return [Check(name, False, "", f"{name}: no predictions yet", needs=(0, MIN_RECORDS))
                for name in ("class drift", "unknown answers", "low confidence")]
    found = [
        class_check(report.classes, report.count),
        _rate_check(
            "unknown answers", report.unknown_share, report.baseline_unknown_share,
            f"{percent(report.unknown_share)} of photos look like none of the {len(report.classes.bins)} known "
            f"classes; expected about {percent(report.baseline_unknown_share)}",
        ),
        _rate_check(
            "low confidence", report.low_confidence_share, report.baseline_low_confidence_share,
            f"{percent(report.low_confidence_share)} of answers are under 50% sure; on validation "
            f"{percent(report.baseline_low_confidence_share)}",
        ),
    ]
    if report.count < MIN_RECORDS:
        return [check.waiting(report.count, MIN_RECORDS) if check.needs is None else check for check in found]
    return found


def class_check(classes: Comparison, count: int) -> Check:
    """Predicted classes against training: a G-test over the pooled groups (:data:`MIN_EXPECTED`)
    for "is it more than chance", PSI and JS distance for "is it big enough to act on"."""
    grouped = classes.pooled()
    if len(grouped.bins) < 2:
        need = max(MIN_RECORDS, math.ceil(MIN_EXPECTED / float(classes.baseline_shares().max())))
        return Check("class drift", False, "", "too few predictions per class to compare the class mix",
                     needs=(count, need))
    statistic = g_statistic(grouped.served, grouped.baseline)
    limit = chi2_critical(len(grouped.bins) - 1, DRIFT_SIGNIFICANCE)
    large = psi(grouped.served, grouped.baseline) > PSI_ALARM or js_distance(grouped.served, grouped.baseline) > JS_ALARM
    biggest = max(grouped.rows(len(grouped.bins)), key=lambda row: abs(row.served - row.baseline))
    gap = f"{percent(biggest.served)} vs {percent(biggest.baseline)}"
    if statistic > limit and large:
        more = "more" if biggest.served > biggest.baseline else "fewer"
        finding = f"Visitors send {more} photos of {biggest.name} than training had: {gap}"
    elif large:
        finding = f"The class mix differs ({biggest.name} {gap}), but no more than chance gives on {count} predictions"
    else:
        finding = f"The classes come in about the training proportions (largest gap: {biggest.name} {gap})"
    pooled = len(classes.bins) - len(grouped.bins) + 1
    message = (
        f"G-test {statistic:.1f} on {len(grouped.bins) - 1} degrees of freedom (chance exceeds {limit:.1f} "
        f"{_once_in(DRIFT_SIGNIFICANCE)}); {grouped.scores()} (alarm > {PSI_ALARM} or > {JS_ALARM}, with the G-test)"
    )
    if pooled > 1:
        message += f"; {pooled} rare classes compared as one group"
    return Check("class drift", statistic > limit and large, message, finding)


def _once_in(alpha: float) -> str:
    return f"once in {round(1 / alpha):,} reports"


def _rate_check(name: str, rate: float, baseline: float, finding: str) -> Check:
    limit = max(RATE_FACTOR * baseline, baseline + RATE_MARGIN)
    return Check(
        name,
        rate > limit,
        f"{rate:.1%} (alarm over {limit:.1%}: more than {RATE_FACTOR:g}x the usual "
        f"{baseline:.1%} and {RATE_MARGIN * 100:.0f} points above it)",
        finding,
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _bin_names(edges: list[float]) -> list[str]:
    names = [f"{low:.3g}-{high:.3g}" for low, high in itertools.pairwise(edges)]
    return names[:-1] + [f">={edges[-2]:.3g}"]


def format_report(report: Report) -> str:
    """The plain-text report the monitor command prints: the headline, then :func:`report_lines`."""
    return "\n".join([report.headline, *report_lines(report)])


def report_lines(report: Report) -> list[str]:
    """Everything under the headline (the app's tab shows the headline in bold above these)."""
    findings = [
        line
        for check in report.checks
        for line in (f"{check.status:<5}  {check.finding}",
                     *([f"{'':<5}  {check.name}: {check.message}"] if check.message else []))
    ]
    return [
        f"Model: {report.model}",
        (
            f"Predictions: {report.count} ({report.other_models} of other models and "
            f"{report.unreadable} unreadable lines ignored)"
        ),
        *_period(report),
        "",
        "Findings (first line: what it means; second: the statistics):",
        *findings,
        "",
        *_comparison_lines("Predicted class", "training", report.classes),
        *_comparison_lines("Top confidence", "validation", report.confidence),
        *_comparison_lines("Outlier score (last bin: unknown)", "validation", report.outlier),
        *(report.visitors.lines() if report.visitors is not None else []),
    ]


def _period(report: Report) -> list[str]:
    if not report.timeline:
        return []
    start, end = report.timeline[0][0], report.timeline[-1][0] + report.bucket
    busiest = max(count for _, count in report.timeline)
    per = duration_text(report.bucket)
    mean = report.count / len(report.timeline)
    return [f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; per {per}: busiest {busiest}, mean {mean:.1f}"]


def _comparison_lines(title: str, reference: str, comparison: Comparison) -> list[str]:
    """A header with both drift scores, then one line per row: served share, baseline share."""
    rows = comparison.rows()
    width = max(len(row.name) for row in rows)
    shown = "" if len(rows) == len(comparison.bins) else f", the {TOP_CLASSES} that moved most first"
    lines = [f"{title}: served vs {reference}{shown} ({comparison.scores()})"]
    served = "   —  " if not sum(comparison.served) else None
    lines += [f"  {row.name:<{width}}  {served or f'{row.served:6.1%}'}  {row.baseline:6.1%}" for row in rows]
    return lines


def duration_text(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"

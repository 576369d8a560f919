"""What visitors report about the served model, counted for the monitoring report.

The feedback store (:mod:`bird_model.feedback`) writes one record per report into the log
folder (:data:`bird_model.logfolder.RECORD_GLOB`); this module only reads them, so the
monitoring package needs nothing of the store.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bird_model.logfolder import NONE_OF_THESE, RECORD_GLOB
from bird_model.monitoring.log import ModelIdentity
from bird_model.monitoring.reading import daily_lines, parse_time
from bird_model.monitoring.report import TOP_CLASSES, Check

if TYPE_CHECKING:
    from bird_model.artifacts import ModelFolder

VISITOR_MIN_REPORTS = 30
VISITOR_ACCURACY_MARGIN = 0.15
"""The visitor-accuracy check alarms when, on at least VISITOR_MIN_REPORTS reports naming a class,
the model's top class matches the visitor's on fewer than validation accuracy minus 15 points.
At 30 reports and a true accuracy of 90%, sampling noise alone is 5.5 points (one standard
deviation), so 15 points is about 2.7 of them. Visitors correct mistakes more readily than they
confirm right answers, so the reported accuracy runs below validation even when nothing has
changed: the margin is wide on purpose, and a real drop still crosses it."""


@dataclass
class VisitorReports:
    """Visitors' reports on one model, counted record by record (memory bounded by the classes).

    Accuracy is over the reports that name one of the model's classes: the share where the
    model's top class is that class, as validation accuracy is computed. "None of these"
    reports are counted apart, with how many of them the model had called unknown.
    """

    classes: list[str]
    validation_accuracy: float
    right: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    none_of_these: int = 0
    none_called_unknown: int = 0
    other_models: int = 0
    unreadable: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        reported = record["reported"]
        if reported in self.classes:
            (self.right if record["answer"] == reported else self.wrong)[reported] += 1
        elif reported == NONE_OF_THESE:
            self.none_of_these += 1
            self.none_called_unknown += bool(record.get("unknown"))
        else:
            self.unreadable += 1

    @property
    def class_reports(self) -> int:
        return sum(self.right.values()) + sum(self.wrong.values())

    @property
    def count(self) -> int:
        return self.class_reports + self.none_of_these

    @property
    def accuracy(self) -> float:
        return sum(self.right.values()) / self.class_reports if self.class_reports else math.nan

    def check(self) -> Check:
        limit = self.validation_accuracy - VISITOR_ACCURACY_MARGIN
        statistics = (
            f"{self.accuracy:.1%} on {self.class_reports} reports vs validation {self.validation_accuracy:.1%} "
            f"(alarm under {limit:.1%} = {VISITOR_ACCURACY_MARGIN * 100:.0f} points below, "
            f"on at least {VISITOR_MIN_REPORTS} reports)"
            if self.class_reports else f"no report naming a class yet; the check needs {VISITOR_MIN_REPORTS}"
        )
        finding = (
            f"Visitors say the model is right {self.accuracy:.0%} of the time; validation promised "
            f"{self.validation_accuracy:.0%}" if self.class_reports else "no visitor has reported a class yet"
        )
        check = Check("visitor accuracy", self.class_reports > 0 and self.accuracy < limit, statistics, finding)
        if self.class_reports < VISITOR_MIN_REPORTS:
            return check.waiting(self.class_reports, VISITOR_MIN_REPORTS)
        return check

    def lines(self) -> list[str]:
        right, wrong = sum(self.right.values()), sum(self.wrong.values())
        accuracy = f"{self.accuracy:.1%}" if self.class_reports else "n/a"
        lines = [
            f"Visitor reports: {self.count} (right {right}, wrong {wrong}, {NONE_OF_THESE} {self.none_of_these}); "
            f"accuracy {accuracy} vs validation {self.validation_accuracy:.1%}"
        ]
        if self.count == 0:
            return lines
        names, rest = self.classes, []
        if len(names) > TOP_CLASSES + 2:  # many classes: the most corrected first, the rest in one line
            reported = sorted((name for name in names if self.right[name] + self.wrong[name]),
                              key=lambda name: (-self.wrong[name], -self.right[name]))
            names, rest = reported[:TOP_CLASSES], reported[TOP_CLASSES:]
        others = f"{len(rest)} other classes"
        width = max(len(name) for name in [*names, NONE_OF_THESE, *([others] if rest else [])])
        for name in names:
            right, wrong = self.right[name], self.wrong[name]
            lines.append(f"  {name:<{width}}  {right + wrong:5d} reports  right {right:5d}  wrong {wrong:5d}")
        if rest:
            right, wrong = sum(self.right[name] for name in rest), sum(self.wrong[name] for name in rest)
            lines.append(f"  {others:<{width}}  {right + wrong:5d} reports  "
                         f"right {right:5d}  wrong {wrong:5d}")
        lines.append(
            f"  {NONE_OF_THESE:<{width}}  {self.none_of_these:5d} reports  "
            f"the model had said unknown for {self.none_called_unknown}"
        )
        return lines


def read_visitor_reports(
    folder: Path, model: ModelIdentity, model_folder: ModelFolder, since: datetime | None = None
) -> VisitorReports:
    """Count ``model``'s feedback records in the log ``folder``, a line at a time, beside the
    validation accuracy of ``model_folder`` (the served model's). No record is no error."""
    reports = VisitorReports(model_folder.classes, model_folder.metrics.validation.accuracy)
    for line in daily_lines(folder, RECORD_GLOB, since):
        try:
            record = json.loads(line)
            moment = parse_time(record["time"])
        except (ValueError, KeyError, TypeError):
            record, moment = None, None
        if record is None or not all(isinstance(record.get(key), str) for key in ("reported", "answer")):
            reports.unreadable += 1
            continue
        if not model.matches(record):
            reports.other_models += 1
        elif since is None or moment >= since:
            reports.add(record)
    return reports

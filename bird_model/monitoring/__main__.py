"""Compare a served model's prediction log with its training baseline; exit 1 on an alarm.

    python -m bird_model.monitor                 # what `python app.py` served: runs/latest, logs/predictions
    BIRD_MODEL=OWNER/birds BIRD_LOG_DIR=/data/log python -m bird_model.monitor   # as the app was started
    python -m bird_model.monitor --model OWNER/birds --revision v1 --since 2025-06-01 --plots monitoring/

It reads the app's settings (BIRD_MODEL, BIRD_MODEL_REVISION, BIRD_LOG_DIR, with the app's
defaults); options override them. Only the log's records of that model (that Hub commit, or
that local folder) are read, with visitors' feedback on it (feedback-*.jsonl in the same folder).
Exit status: 0 no alarm (or too little data to judge yet), 1 at least one alarm, 2 nothing to
report on (no log folder, no predictions of that model, no model or baseline, a bad --since).
Alarms and thresholds: docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from bird_model.artifacts import ModelFolderError
from bird_model.hub import HubError, fetch_model
from bird_model.monitoring.baseline import read_baseline
from bird_model.monitoring.log import ModelIdentity
from bird_model.monitoring.plots import save_figures
from bird_model.monitoring.reading import parse_time, read_log
from bird_model.monitoring.reading import LogSummary
from bird_model.monitoring.report import build_report, format_report
from bird_model.monitoring.visitors import read_visitor_reports
from bird_model.settings import ServedModel, ServingSettings


def iso_time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2025-06-01 or 2025-06-01T12:00Z"
        ) from None


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    served = ServedModel.from_environment(environ)
    parser = argparse.ArgumentParser(
        prog="python -m bird_model.monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-dir", type=Path, default=served.log_dir,
                        help=f"the app's prediction log folder (default: $BIRD_LOG_DIR, else {ServedModel.log_dir})")
    parser.add_argument("--model", default=served.source,
                        help=f"the served model: a model folder or a Hub repo id OWNER/NAME "
                             f"(default: $BIRD_MODEL, else {ServedModel.source})")
    parser.add_argument("--revision", default=served.revision,
                        help=f"branch, tag or commit of a Hub model "
                             f"(default: $BIRD_MODEL_REVISION, else {ServingSettings.revision})")
    parser.add_argument("--since", type=iso_time,
                        help="only predictions from this time on (ISO 8601; UTC without zone)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write the report's plots as PNG files here")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser(os.environ).parse_args(argv)


class NothingToReport(Exception):
    """The model and log were found, but the log holds no prediction of that model."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if ServedModel(args.model).is_default_and_missing():
        print(f"monitor: error: no model to report on: {args.model} does not exist (train.py writes it). "
              "Set BIRD_MODEL as for the app, or pass --model.", file=sys.stderr)
        return 2
    try:
        fetched = fetch_model(args.model, args.revision, token=os.environ.get("HF_TOKEN") or None)
        baseline = read_baseline(fetched.folder)
        log = read_log(args.log_dir, ModelIdentity.of(fetched), baseline, args.since)
        require_predictions(log, args.log_dir, args.since)
        visitors = read_visitor_reports(args.log_dir, ModelIdentity.of(fetched), fetched.folder, args.since)
    except (HubError, ModelFolderError, FileNotFoundError, NothingToReport) as error:
        print(f"monitor: error: {error}", file=sys.stderr)
        return 2
    report = build_report(log, baseline, fetched.version(), visitors)
    print(format_report(report))
    if args.plots:
        print("Plots: " + ", ".join(str(path) for path in save_figures(report, args.plots)))
    return 1 if report.alarms else 0


def require_predictions(log: LogSummary, folder: Path, since: datetime | None) -> None:
    """A scheduled check must not pass on an empty log: a wrong folder or model, or an app that
    logs nowhere, would otherwise look like a healthy model. Raises :class:`NothingToReport` with the likely cause."""
    if log.count:
        return
    if log.other_models:
        cause = (f"its {log.other_models} predictions are of other models; is BIRD_MODEL (or --model) "
                 "the model the app serves?")
    elif since is not None and log.unreadable == 0:
        cause = f"none since {since:%Y-%m-%d %H:%M} UTC"
    else:
        cause = "the app has logged none there yet; is BIRD_LOG_DIR (or --log-dir) the app's?"
    raise NothingToReport(f"no predictions of this model in {folder}: {cause}")


if __name__ == "__main__":
    sys.exit(main())

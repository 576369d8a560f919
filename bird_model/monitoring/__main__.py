"""Compare a served model's prediction log with its training baseline; exit 1 on an alarm.

    python -m bird_model.monitor --log-dir logs/predictions --model runs/birds
    python -m bird_model.monitor --log-dir logs/predictions --model OWNER/birds --revision v1 \\
        --since 2025-06-01 --plots monitoring/

Only the log's records of that model (that Hub commit, or that local folder) are read, with
visitors' feedback on it (feedback-*.jsonl in the same folder).
Exit status: 0 no alarm (or too few predictions to judge), 1 at least one alarm,
2 bad input (log folder, model, baseline or --since). Alarms and thresholds: README.md,
"Monitoring".
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from bird_model.artifacts import ModelFolderError
from bird_model.feedback import read_visitor_reports
from bird_model.hub import HubError, fetch_model
from bird_model.monitoring.baseline import read_baseline
from bird_model.monitoring.log import ModelIdentity
from bird_model.monitoring.plots import save_figures
from bird_model.monitoring.reading import parse_time, read_log
from bird_model.monitoring.report import build_report, format_report


def iso_time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2025-06-01 or 2025-06-01T12:00Z"
        ) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bird_model.monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-dir", type=Path, required=True,
                        help="the app's prediction log folder (its BIRD_LOG_DIR)")
    parser.add_argument("--model", required=True, help="the served model: a model folder or a Hub repo id OWNER/NAME")
    parser.add_argument("--revision", help="branch, tag or commit of a Hub model (default main)")
    parser.add_argument("--since", type=iso_time,
                        help="only predictions from this time on (ISO 8601; UTC without zone)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write the report's plots as PNG files here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fetched = fetch_model(args.model, args.revision, token=os.environ.get("HF_TOKEN") or None)
        baseline = read_baseline(fetched.folder)
        log = read_log(args.log_dir, ModelIdentity.of(fetched), baseline, args.since)
        visitors = read_visitor_reports(args.log_dir, ModelIdentity.of(fetched), fetched.folder, args.since)
    except (HubError, ModelFolderError, FileNotFoundError) as error:
        print(f"monitor: error: {error}", file=sys.stderr)
        return 2
    report = build_report(log, baseline, fetched.version(), visitors)
    print(format_report(report))
    if args.plots:
        print("Plots: " + ", ".join(str(path) for path in save_figures(report, args.plots)))
    return 1 if report.alarms else 0


if __name__ == "__main__":
    sys.exit(main())

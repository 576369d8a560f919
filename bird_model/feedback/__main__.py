"""Review visitors' reports before training reads them.

    python -m bird_model.feedback list                       # pending reports, counts per class
    python -m bird_model.feedback accept 1a2b3c4d5e 9f8e...  # by id (any unambiguous prefix)
    python -m bird_model.feedback accept --class macaw       # every pending report of a class
    python -m bird_model.feedback reject --all               # deletes the photos

The log folder is the app's (BIRD_LOG_DIR, default logs/predictions); --log-dir overrides it.
Accepted reports are what `train.py --data LOG_FOLDER/feedback` trains on. Exit 0 when done,
2 with a one-line message for bad usage or a selection that matches nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from bird_model.feedback.review import (
    ID_LENGTH,
    Report,
    ReviewError,
    accept,
    describe_counts,
    pending_reports,
    per_class,
    photos_in,
    reject,
    select,
)
from bird_model.feedback.store import open_feedback_folder
from bird_model.logfolder import ACCEPTED_DIR, FEEDBACK_DIR, PENDING_DIR
from bird_model.settings import ServedModel


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    log_dir = ServedModel.from_environment(environ).log_dir
    parser = argparse.ArgumentParser(prog="python -m bird_model.feedback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-dir", type=Path, default=log_dir,
                        help=f"the app's log folder (default here: {log_dir}, from BIRD_LOG_DIR)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="list|accept|reject")
    commands.add_parser("list", help="pending reports: id, class, the model's answer, time; counts per class")
    for name, effect in (("accept", "move into accepted/, which training reads"),
                         ("reject", "delete the photos (the decision is logged)")):
        command = commands.add_parser(name, help=f"{effect}: by id, --class NAME or --all")
        command.add_argument("ids", nargs="*", metavar="ID", help="report ids as `list` shows them (a prefix will do)")
        command.add_argument("--class", dest="reported", metavar="NAME", help="every pending report of this class")
        command.add_argument("--all", action="store_true", help="every pending report")
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    if not args.log_dir.is_dir():
        return _fail(f"{args.log_dir} is not a folder; point --log-dir (or BIRD_LOG_DIR) at the app's log folder.")
    feedback = open_feedback_folder(args.log_dir)
    reports = pending_reports(args.log_dir, feedback)
    if args.command == "list":
        print_pending(reports, feedback)
        return 0
    if sum((bool(args.ids), args.reported is not None, args.all)) != 1:
        return _fail(f"{args.command} needs exactly one of: report ids, --class NAME, --all.")
    try:
        chosen = select(reports, args.ids, args.reported, args.all)
    except ReviewError as error:
        return _fail(str(error))
    if args.command == "accept":
        counts = accept(feedback, chosen)
        print(f"Accepted {sum(counts.values())} reports ({describe_counts(counts)}): "
              f"train.py --data {args.log_dir / FEEDBACK_DIR} now trains on them.")
    else:
        counts = reject(feedback, chosen)
        print(f"Rejected {sum(counts.values())} reports ({describe_counts(counts)}): their photos are deleted.")
    return 0


def print_pending(reports: list[Report], feedback: Path) -> None:
    accepted = per_class(photos_in(feedback / ACCEPTED_DIR))
    accepted_line = (f"Accepted so far: {sum(accepted.values())} ({describe_counts(accepted)})."
                     if accepted else "None accepted yet.")
    if not reports:
        print(f"No feedback report is pending review in {feedback}. {accepted_line}")
        return
    width = max(len("class"), *(len(report.reported) for report in reports))
    answer_width = max(len("model said"), *(len(report.answer or "?") for report in reports))
    print(f"{len(reports)} feedback reports pending review (photos in {feedback / PENDING_DIR}/CLASS/):")
    print(f"  {'id':<{ID_LENGTH}}  {'class':<{width}}  {'model said':<{answer_width}}  time")
    for report in reports:
        print(f"  {report.id:<{ID_LENGTH}}  {report.reported:<{width}}  {report.answer or '?':<{answer_width}}  "
              f"{report.time or '?'}")
    print(f"Pending per class: {describe_counts(per_class(reports))}. {accepted_line}")
    print("Look at the photos, then: python -m bird_model.feedback accept ID... | --class NAME | --all "
          "(or reject, which deletes them).")


def _fail(message: str) -> int:
    print(f"python -m bird_model.feedback: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

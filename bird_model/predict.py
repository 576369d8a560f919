"""Classify photo files and folders with a model, into CSV or JSON Lines: one row per photo.

    python -m bird_model.predict --model runs/latest photos/ extra.jpg > answers.csv
    python -m bird_model.predict --model OWNER/birds --revision v1 --format jsonl --output answers.jsonl photos/

Folders are searched recursively for the formats the app reads (JPEG, PNG, WebP, BMP, GIF;
hidden files are skipped); a file named on the command line is always tried. Each photo goes
through the app's decoder, model and "not one of my birds" check (bird_model/batch.py). A file
that cannot be classified gets an error row with the reason and the run goes on. The rows go to
stdout (or --output); the progress bar goes to stderr.
Exit status: 0 every photo classified; 1 at least one error row; 2 bad input (model, options,
or no photo found).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bird_model.batch import FileResult, add_model_options, classify_files, find_photos, open_classifier, output_file
from bird_model.formats import FORMAT_NAMES
from bird_model.settings import ServingSettings

FORMATS = ("csv", "jsonl")
"""Output formats; the first is the default."""

DECIMALS = 4
"""Scores and outlier scores are rounded to this: more digits are noise, not information."""


@dataclass(frozen=True)
class Row:
    """One photo's line of output, in either format."""

    path: str
    verdict: str
    """``known``, ``unknown`` (unlike every class the model knows) or ``error``."""
    top: list[tuple[str, float]]
    """The top-k classes with their rounded probabilities, highest first; empty for an error."""
    outlier_score: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, result: FileResult, top_k: int) -> Row:
        prediction = result.prediction
        if prediction is None:
            return cls(str(result.path), "error", [], error=result.error)
        top = [(name, round(score, DECIMALS)) for name, score in list(prediction.scores.items())[:top_k]]
        outlier = None if prediction.outlier_score is None else round(prediction.outlier_score, DECIMALS)
        return cls(str(result.path), "unknown" if prediction.unknown else "known", top, outlier)


def csv_header(top_k: int) -> list[str]:
    ranks = [column for rank in range(1, top_k + 1) for column in (f"class_{rank}", f"score_{rank}")]
    return ["path", "verdict", *ranks, "outlier_score", "error"]


def csv_cells(row: Row, top_k: int) -> list[str | float]:
    """Error rows leave the class and score cells empty, so every row has the header's columns."""
    ranks: list[str | float] = [cell for name, score in row.top for cell in (name, score)]
    ranks += [""] * (2 * top_k - len(ranks))
    return [row.path, row.verdict, *ranks, "" if row.outlier_score is None else row.outlier_score, row.error or ""]


def json_line(row: Row) -> str:
    document: dict[str, object] = {"path": row.path, "verdict": row.verdict}
    if row.error is None:
        document["top"] = [{"class": name, "score": score} for name, score in row.top]
        document["outlier_score"] = row.outlier_score
    else:
        document["error"] = row.error
    return json.dumps(document, ensure_ascii=False)


def write_rows(rows: Iterator[Row], stream: TextIO, output_format: str, top_k: int) -> Counter[str]:
    """Write each row as it comes (a long run can be watched and cut short); returns the count of each verdict."""
    verdicts: Counter[str] = Counter()
    writer = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
    if writer is not None:
        writer.writerow(csv_header(top_k))
    for row in rows:
        verdicts[row.verdict] += 1
        if writer is not None:
            writer.writerow(csv_cells(row, top_k))
        else:
            stream.write(json_line(row) + "\n")
        stream.flush()
    return verdicts


@contextmanager
def opened(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8", newline="") as stream:
        yield stream


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = ServingSettings()
    parser = argparse.ArgumentParser(
        prog="python -m bird_model.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_options(parser)
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="photo files and folders of photos")
    parser.add_argument("--top-k", type=positive, default=defaults.top_k,
                        help=f"classes per photo, highest first (default {defaults.top_k}; capped at the class count)")
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], help=f"output format (default {FORMATS[0]})")
    parser.add_argument("--output", type=output_file, metavar="FILE", help="write the rows here instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    photos = find_photos(args.paths)
    if not photos:
        searched = ", ".join(str(path) for path in args.paths)
        parser.exit(2, f"{parser.prog}: error: no photos ({FORMAT_NAMES}) found in {searched}.\n")
    _, classifier = open_classifier(parser, args)
    top_k = min(args.top_k, len(classifier.classes))
    results = classify_files(classifier, photos, "Classifying")
    with opened(args.output) as stream:
        verdicts = write_rows((Row.of(result, top_k) for result in results), stream, args.format, top_k)
    print(f"{len(photos)} files: {verdicts['known']} known, {verdicts['unknown']} unknown, "
          f"{verdicts['error']} could not be classified" + (" (their rows say why)." if verdicts["error"] else "."),
          file=sys.stderr)
    return 1 if verdicts["error"] else 0


if __name__ == "__main__":
    sys.exit(main())

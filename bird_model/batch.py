"""Classifying photo files on disk outside the page: what ``evaluate`` and ``predict`` share.

Both commands load a model the way the app does (``hub.fetch_model``: a local folder or one
revision of a Hub repo, then ``inference.Classifier``: the same decoder, the same
``model.tflite`` and the same "not one of my birds" check), and walk their photos one at a
time with a progress bar on stderr. The serving model takes one photo per call (a fixed batch
of one: ``litert.export_litert`` says why), so photos are classified one by one. A file that
cannot be classified becomes a result with its reason instead of ending the run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bird_model.artifacts import ModelFolderError
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.hub import FetchedModel, HubError, fetch_model
from bird_model.images import ImageError
from bird_model.inference import Classifier, Prediction
from bird_model.settings import ServingSettings


@dataclass(frozen=True)
class FileResult:
    """One file's answer, or why it has none (``prediction`` None, ``error`` the reason)."""

    path: Path
    prediction: Prediction | None = None
    error: str | None = None


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--revision``, as ``app.py`` and the monitor name them."""
    parser.add_argument("--model", required=True,
                        help="the model: a model folder, or a Hugging Face Hub repo id OWNER/NAME")
    parser.add_argument("--revision",
                        help=f"branch, tag or commit of a Hub model (default {ServingSettings().revision})")


def output_file(text: str) -> Path:
    """An ``--output`` path whose folder exists: refused before any photo is classified, not after."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.parent} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file")
    return path


def open_classifier(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[FetchedModel, Classifier]:
    """The model named by ``--model``/``--revision``, ready to classify; exits 2 with one line when it is unusable."""
    try:
        fetched = fetch_model(args.model, args.revision, token=os.environ.get("HF_TOKEN") or None)
        return fetched, Classifier(fetched.folder)
    except (HubError, ModelFolderError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")


def find_photos(paths: list[Path]) -> list[Path]:
    """Each named file as given, and every non-hidden file of a listed format under each named folder.

    A named file is kept whatever its ending (the decoder then says what is wrong with it), so
    a typo or a wrong file shows up as an error row rather than vanishing; inside folders only
    the endings of :mod:`bird_model.formats` count, so the other files a photo folder holds
    (notes, sidecar files) are passed over.
    """
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        found.extend(
            sorted(
                candidate for candidate in path.rglob("*")
                if candidate.suffix.lower() in SUPPORTED_EXTENSIONS
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
                and candidate.is_file()
            )
        )
    return found


def classify_files(classifier: Classifier, paths: list[Path], description: str) -> Iterator[FileResult]:
    """Classify each file in turn, with a progress bar on stderr; unreadable files become error results."""
    for path in tqdm(paths, desc=description, unit="photo"):
        try:
            yield FileResult(path, prediction=classifier.classify(path))
        except ImageError as error:
            yield FileResult(path, error=str(error))
        except OSError as error:
            yield FileResult(path, error=f"The file could not be read ({error.strerror or type(error).__name__}).")

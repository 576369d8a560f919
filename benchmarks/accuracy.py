"""Accuracy and training time of our two-phase training against the original notebook's recipe.

    python benchmarks/accuracy.py --data ../shared/datasets/parrots \\
        --base-weights ../shared/weights/mobilenet_v2_1.0_notop.proxy.weights.h5
    python benchmarks/accuracy.py ... --parts cv --folds 0,1 --recipes ours     # a slice of it
    python benchmarks/accuracy.py --summarize benchmarks/results/accuracy-*.json

Cross-validation (``--parts cv``): stratified, group-aware folds over every usable photo
(``benchmarks/folds.py``: near-duplicates stay in one fold). For each fold,
each recipe trains on the other folds and is graded on this one. Ours is trained exactly
as ``pipeline.py`` does it (``build_classifier`` + ``train_two_phases``); the original is
``benchmarks/original_recipe.py``. As in ``train.py``, the graded photos also drive early
stopping, for both recipes alike. Reported: accuracy and macro-F1 per fold, their mean ±
sample standard deviation, and the expected calibration error of the out-of-fold
confidences.

Training time (``--parts time``): ``train.py`` as a subprocess, wall clock end to end
(start-up, photo checks, training, evaluation, the whole model folder), against
``original_recipe.py`` end to end on the same photos and the same 80/20 split, in one run.

Trainings take minutes each on a CPU, so results print as they come and the raw results
(every out-of-fold probability included) are rewritten to a JSON under benchmarks/results/
after each training: a run can be split over several invocations and summarized later.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.folds import stratified_folds
from benchmarks.machine import describe_machine
from bird_model.data import Dataset, Split, load_dataset
from bird_model.evaluation import classification_metrics
from bird_model.pipeline import resolve_base_weights
from bird_model.settings import TrainingOptions

if TYPE_CHECKING:
    from bird_model.inputs import Photos

RECIPES = ("ours", "original")
PARTS = ("cv", "time")
CALIBRATION_BINS = 10
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}

Trainer = Callable[["Photos", "Photos", int, int, str | None, TrainingOptions], tuple[np.ndarray, dict]]
"""Training and graded photos (``bird_model.inputs.Photos``, streamed from the photo cache), class count,
image size, base weights, options -> probabilities of the graded photos and the histories."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "parrots",
                        help="folder-per-class photos (default: ../shared/datasets/parrots)")
    parser.add_argument("--base-weights", default="imagenet",
                        help="MobileNetV2 start for both recipes: imagenet (default), none or a weights file")
    parser.add_argument("--parts", type=_names(PARTS), default=list(PARTS),
                        help="cv (cross-validation), time (training time) or both, comma-separated (default: both)")
    parser.add_argument("--recipes", type=_names(RECIPES), default=list(RECIPES),
                        help="ours, original or both, comma-separated (default: both)")
    parser.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--folds", type=_indices, help="which folds to run, e.g. 0,1 (default: all)")
    parser.add_argument("--epochs", type=int, default=TrainingOptions.epochs)
    parser.add_argument("--fine-tune-epochs", type=int, default=TrainingOptions.fine_tune_epochs)
    parser.add_argument("--batch-size", type=int, default=TrainingOptions.batch_size)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=TrainingOptions.seed,
                        help="seeds the folds, the split and both recipes (default 42)")
    parser.add_argument("--output", type=Path, help="results JSON (default: benchmarks/results/accuracy-<time>.json)")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: merge these results files and print their summary")
    args = parser.parse_args(argv)
    if args.folds and not all(0 <= fold < args.k for fold in args.folds):
        parser.error(f"--folds must lie in 0..{args.k - 1}")
    return args


def main() -> None:
    args = parse_args()
    if args.summarize:
        print(summarize(merge_results([json.loads(path.read_text()) for path in args.summarize])))
        return
    os.environ.update(QUIET_ENV)
    output = args.output or ROOT / "benchmarks" / "results" / f"accuracy-{datetime.now():%Y%m%d-%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": settings_record(args),
        "source": source_state(),
        "machine_start": describe_machine(),
        "cross_validation": [],
        "training_time": [],
    }
    print(results["machine_start"], flush=True)
    print(weights_note(args.base_weights), flush=True)

    def save() -> None:
        output.write_text(json.dumps(results, indent=1))

    if "cv" in args.parts:
        for record in cross_validate(args):
            results["cross_validation"].append(record)
            save()
    if "time" in args.parts:
        for record in time_trainings(args):
            results["training_time"].append(record)
            save()
    results["machine_end"] = describe_machine()
    save()
    print(f"\n{results['machine_end']}\nRaw results: {output}\n")
    print(summarize(results))


def cross_validate(args: argparse.Namespace) -> Iterator[dict]:
    """Train each selected recipe on each selected fold; yield one record per training, as it ends."""
    weights = resolve_base_weights(args.base_weights)
    dataset = load_dataset([args.data], args.image_size, show_progress=False)
    folds = stratified_folds(dataset, args.k, args.seed)
    options = training_options(args)
    for fold in args.folds or range(args.k):
        split = folds[fold]
        for recipe in args.recipes:
            print(f"\n=== fold {fold}: {recipe}, {len(split.train)} training / {len(split.validation)} graded photos",
                  flush=True)
            record = train_on_fold(TRAINERS[recipe], dataset, split, args.image_size, weights, options)
            record.update(recipe=recipe, fold=fold)
            print(f"=== fold {fold}: {recipe} accuracy {record['accuracy']:.2%}, macro-F1 {record['macro_f1']:.3f}, "
                  f"ECE {record['ece']:.3f}, {record['seconds']:.0f} s, epochs {record['epochs']}", flush=True)
            yield record


def train_on_fold(
    trainer: Trainer,
    dataset: Dataset,
    split: Split,
    image_size: int,
    weights: str | None,
    options: TrainingOptions,
) -> dict:
    """One training, graded on the fold: its scores and the raw probabilities behind them."""
    import keras

    from bird_model.inputs import Photos

    keras.backend.clear_session()  # each training starts from a fresh graph, not the last one's leftovers
    train, validation = Photos.of(dataset, split.train), Photos.of(dataset, split.validation)
    started = time.monotonic()
    probabilities, histories = trainer(train, validation, len(dataset.classes), image_size, weights, options)
    seconds = time.monotonic() - started
    metrics = classification_metrics(validation.labels, probabilities, dataset.classes)
    return {
        "photos": len(split.validation),
        "seconds": seconds,
        "epochs": {phase: len(history["loss"]) for phase, history in histories.items()},
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        "ece": expected_calibration_error(validation.labels, probabilities),
        "classes": dataset.classes,
        "photos_graded": [f"{dataset.samples[index].label}/{dataset.samples[index].path.name}"
                          for index in split.validation],
        "labels": validation.labels.tolist(),
        "probabilities": probabilities.tolist(),
    }


def train_ours(
    train: Photos, validation: Photos, num_classes: int, image_size: int, weights: str | None, options: TrainingOptions
) -> tuple[np.ndarray, dict]:
    """As ``pipeline.run_training`` trains: the product's model and two phases, untouched."""
    from bird_model.model import build_classifier
    from bird_model.training import batched_predict, make_reproducible, train_two_phases

    make_reproducible(options.seed)
    model = build_classifier(num_classes, image_size, weights)
    histories = train_two_phases(model, train, validation, options)
    return np.asarray(batched_predict(model, validation)), histories


def train_original(
    train: Photos, validation: Photos, num_classes: int, image_size: int, weights: str | None, options: TrainingOptions
) -> tuple[np.ndarray, dict]:
    from benchmarks import original_recipe

    model = original_recipe.build_original_classifier(num_classes, image_size, weights)
    histories = original_recipe.train_original(model, train, validation, options)
    return original_recipe.predict_original(model, validation), histories


TRAINERS: dict[str, Trainer] = {"ours": train_ours, "original": train_original}


def time_trainings(args: argparse.Namespace) -> Iterator[dict]:
    """Each selected recipe end to end in a subprocess, one after the other; yield a record each."""
    with tempfile.TemporaryDirectory(prefix="bird-timing-") as scratch:
        for recipe in args.recipes:
            command, read_metrics = timing_command(recipe, args, Path(scratch))
            print(f"\n=== training time: {recipe}: {' '.join(command)}", flush=True)
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            finished = subprocess.run(
                command, check=False, cwd=ROOT, env={**os.environ, **QUIET_ENV}, capture_output=True, text=True
            )
            seconds = time.monotonic() - started
            if finished.returncode != 0:
                tail = f"{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
                sys.exit(f"{recipe} failed with exit status {finished.returncode}:\n{tail}")
            metrics = read_metrics()
            record = {
                "recipe": recipe,
                "command": " ".join(command),
                "seconds": seconds,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "photos": metrics["count"],
                "load_1min_before": load_before,
                "load_1min_after": os.getloadavg()[0],
            }
            print(f"=== training time: {recipe} {seconds:.0f} s wall clock, validation accuracy "
                  f"{record['accuracy']:.2%} of {record['photos']} photos", flush=True)
            yield record


def timing_command(recipe: str, args: argparse.Namespace, scratch: Path) -> tuple[list[str], Callable[[], dict]]:
    """The command line of a recipe's run and how to read its validation metrics afterwards."""
    shared = ["--data", str(args.data), "--base-weights", args.base_weights, "--epochs", str(args.epochs),
              "--fine-tune-epochs", str(args.fine_tune_epochs), "--batch-size", str(args.batch_size),
              "--image-size", str(args.image_size), "--seed", str(args.seed)]
    if recipe == "ours":
        folder = scratch / "ours"
        metrics_file = folder / "metrics.json"
        command = [sys.executable, "train.py", *shared, "--output", str(folder)]
        return command, lambda: json.loads(metrics_file.read_text())["validation"]
    result = scratch / "original.json"
    command = [sys.executable, "benchmarks/original_recipe.py", *shared, "--result", str(result)]
    return command, lambda: json.loads(result.read_text())["validation"]


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width bins of top confidence, weighted by photos per bin.

    Accuracy says how often the top class is right; ECE says whether the confidence shown
    to a user (the demo's percentages) can be taken at face value.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (0, 0.1] -> 0 ... (0.9, 1] -> 9
    error = 0.0
    for index in np.unique(which):
        in_bin = which == index
        error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def summarize(results: dict) -> str:
    """Markdown tables of whatever the results hold, and the issue's targets checked against them."""
    settings = results["settings"]
    described = ", ".join(f"{name} {value}" for name, value in settings.items() if name != "base_weights")
    lines = [weights_note(settings["base_weights"]), f"Settings: {described}"]
    folds = results["cross_validation"]
    if folds:
        lines += ["", *fold_table(folds), "", *pooled_lines(folds)]
    if results["training_time"]:
        lines += ["", *timing_table(results["training_time"])]
    return "\n".join(lines)


def fold_table(records: list[dict]) -> list[str]:
    by_key = {(record["recipe"], record["fold"]): record for record in records}
    recipes = [recipe for recipe in RECIPES if any(r == recipe for r, _ in by_key)]
    fold_ids = sorted({fold for _, fold in by_key})
    columns = [f"{recipe} {what}" for what in ("accuracy", "macro-F1", "ECE", "s") for recipe in recipes]
    lines = ["| fold | photos | " + " | ".join(columns) + " |", "| ---: " * (len(columns) + 2) + "|"]
    for fold in fold_ids:
        cells = [_cell(by_key.get((recipe, fold)), what) for what in ("accuracy", "macro_f1", "ece", "seconds")
                 for recipe in recipes]
        photos = next(by_key[key]["photos"] for key in by_key if key[1] == fold)
        lines.append(f"| {fold} | {photos} | " + " | ".join(cells) + " |")
    means = [_mean_std([by_key[(recipe, f)][what] for f in fold_ids if (recipe, f) in by_key], what)
             for what in ("accuracy", "macro_f1", "ece", "seconds") for recipe in recipes]
    lines.append("| mean ± std | | " + " | ".join(means) + " |")
    return lines


def pooled_lines(records: list[dict]) -> list[str]:
    """Out-of-fold scores over all graded photos at once, and the targets where both recipes ran."""
    lines = []
    pooled: dict[str, dict] = {}
    for recipe in RECIPES:
        own = [record for record in records if record["recipe"] == recipe]
        if not own:
            continue
        labels = np.concatenate([record["labels"] for record in own])
        probabilities = np.concatenate([record["probabilities"] for record in own])
        metrics = classification_metrics(labels, probabilities, own[0]["classes"])
        pooled[recipe] = {
            "accuracy": metrics.accuracy,
            "macro_f1": metrics.macro_f1,
            "ece": expected_calibration_error(labels, probabilities),
            "folds": {record["fold"]: record["accuracy"] for record in own},
        }
        lines.append(f"{recipe}, out-of-fold over {metrics.count} photos ({len(own)} folds): accuracy "
                     f"{metrics.accuracy:.2%} ({metrics.correct}/{metrics.count}), macro-F1 "
                     f"{metrics.macro_f1:.3f}, ECE {pooled[recipe]['ece']:.3f} ({CALIBRATION_BINS} bins)")
    if "ours" in pooled:
        ours = pooled["ours"]
        mean = float(np.mean(list(ours["folds"].values())))
        lines.append(f"Target mean accuracy >= 99.0%: {mean:.2%} -> {'met' if mean >= 0.99 else 'NOT met'}")
        lines.append(f"Target ECE <= 0.03: {ours['ece']:.3f} -> {'met' if ours['ece'] <= 0.03 else 'NOT met'}")
    if {"ours", "original"} <= pooled.keys():
        common = pooled["ours"]["folds"].keys() & pooled["original"]["folds"].keys()
        behind = sorted(f for f in common if pooled["ours"]["folds"][f] < pooled["original"]["folds"][f])
        verdict = "met" if not behind else f"NOT met (behind on folds {behind})"
        lines.append(f"Target not below the original on any fold ({len(common)} compared): {verdict}")
    return lines


def timing_table(records: list[dict]) -> list[str]:
    lines = ["| recipe | wall clock s | validation accuracy | macro-F1 | load (1 min) before → after |",
             "| --- | ---: | ---: | ---: | --- |"]
    for record in records:
        lines.append(f"| {record['recipe']} | {record['seconds']:.0f} | {record['accuracy']:.2%} of "
                     f"{record['photos']} | {record['macro_f1']:.3f} | "
                     f"{record['load_1min_before']:.2f} → {record['load_1min_after']:.2f} |")
    by_recipe = {record["recipe"]: record for record in records}
    if {"ours", "original"} <= by_recipe.keys():
        ours, original = by_recipe["ours"], by_recipe["original"]
        fast = ours["seconds"] <= 180 and ours["seconds"] < original["seconds"]
        lines.append(f"Target <= 180 s and faster than the original: {ours['seconds']:.0f} s vs "
                     f"{original['seconds']:.0f} s ({original['seconds'] / ours['seconds']:.1f}x) -> "
                     f"{'met' if fast else 'NOT met'}; accuracy {ours['accuracy']:.2%} vs {original['accuracy']:.2%} "
                     f"-> {'no loss' if ours['accuracy'] >= original['accuracy'] else 'LOSS'}")
    return lines


def merge_results(documents: list[dict]) -> dict:
    """Several runs' results as one; a later file's training of the same recipe and fold wins."""
    settings = {json.dumps(document["settings"], sort_keys=True) for document in documents}
    if len(settings) > 1:
        sys.exit(f"These results were measured with different settings and do not merge: {sorted(settings)}")
    folds = {(r["recipe"], r["fold"]): r for document in documents for r in document["cross_validation"]}
    timings = {r["recipe"]: r for document in documents for r in document["training_time"]}
    return {"settings": documents[0]["settings"], "cross_validation": list(folds.values()),
            "training_time": list(timings.values())}


def settings_record(args: argparse.Namespace) -> dict:
    """What must match for results of separate invocations to be merged."""
    return {"data": str(args.data), "base_weights": args.base_weights, "k": args.k, "seed": args.seed,
            "image_size": args.image_size, "epochs": args.epochs, "fine_tune_epochs": args.fine_tune_epochs,
            "batch_size": args.batch_size}


def source_state() -> dict:
    """The commit measured and the files that differed from it: other work may be in progress."""
    def git(*words: str) -> str:
        return subprocess.run(["git", *words], check=False, cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "modified": git("status", "--porcelain").splitlines()}


def weights_note(base_weights: str) -> str:
    if base_weights == "imagenet":
        return "Base weights: ImageNet."
    return (f"Base weights: {base_weights}. NOT ImageNet: a stand-in (see ../shared/weights/README.md); "
            "every accuracy figure here is measured with it.")


def training_options(args: argparse.Namespace) -> TrainingOptions:
    return TrainingOptions(epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size,
                           seed=args.seed)


def _cell(record: dict | None, what: str) -> str:
    if record is None:
        return "–"
    return _format(record[what], what)


def _mean_std(values: list[float], what: str) -> str:
    if len(values) < 2:
        return _format(values[0], what) if values else "–"
    return f"{_format(float(np.mean(values)), what)} ± {_format(float(np.std(values, ddof=1)), what)}"


def _format(value: float, what: str) -> str:
    return {"accuracy": f"{value:.1%}", "macro_f1": f"{value:.3f}", "ece": f"{value:.3f}"}.get(what, f"{value:.0f}")


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}, comma-separated")
        return names

    return parse


def _indices(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    main()

"""One photo from a file on disk to its top-k classes: the original way against the serving path.

    python benchmarks/latency.py [--model runs/parrots] [--photos ../shared/datasets/parrots] [--variants]

The overlay's cost is measured for a model folder from today's train.py (its model.tflite has
the activation map); an older folder is timed without it.

The original way is the issue's baseline: Pillow decode and resize, pixels scaled by 1/255
(as that code did; this model scales its own 0-255 input, so only the timing is
meaningful), then ``model.predict``. The serving path is ``Classifier.classify``, which
serves ``model.tflite`` when the folder has one; with the overlay it is ``Classifier.explain``
(the same forward pass, plus the activation map drawn over the photo), and the overlay's added
cost is the median of its per-photo difference to ``classify``. All run in one process and
alternate call by call, so a busy neighbour on a shared machine slows them alike.

With ``--variants`` the serving path is timed once per LiteRT conversion (float32,
dynamic-range, full-integer: ``bird_model.quantization``), each with its file size and its
validation accuracy (the folder's split.json, photos found under ``--photos``); the conversions
the folder does not hold are made from its Keras model, calibrated on its training photos as
training does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe_machine
from bird_model.artifacts import LITERT_FILE, OOD_FILE, ModelFolder, read_model_folder
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.inference import Classifier
from bird_model.litert import export_quantized
from bird_model.ood import calibrate_threshold
from bird_model.settings import RunSettings

TopK = Callable[[Path], list[str]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"), help="model folder (default: runs/parrots)")
    parser.add_argument("--photos", type=Path, default=Path("../shared/datasets/parrots"),
                        help="folder searched recursively for photos (default: ../shared/datasets/parrots)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per way (default: 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per way first (default: 10)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--variants", action="store_true", help="time every LiteRT conversion (see above)")
    parser.add_argument("--foreign", type=Path, default=Path("../shared/datasets/foreign-birds"),
                        help="with --variants: other birds whose unknown verdicts are counted")
    return parser.parse_args()


def original_way(folder: ModelFolder, top_k: int) -> TopK:
    """The code the issue measured, with the model loaded once as it was."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    model = keras.saving.load_model(folder.model_path, compile=False)
    size = folder.image_size

    def classify(photo: Path) -> list[str]:
        with Image.open(photo) as image:
            pixels = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        probabilities = model.predict(pixels[np.newaxis], verbose=0)[0]
        return [folder.classes[i] for i in np.argsort(probabilities)[::-1][:top_k]]

    return classify


def serving_path(folder: ModelFolder, top_k: int) -> TopK:
    classifier = Classifier(folder)
    return lambda photo: list(classifier.classify(photo).scores)[:top_k]


def serving_path_with_overlay(folder: ModelFolder, top_k: int) -> TopK | None:
    """None for a folder whose model.tflite predates the activation map output."""
    classifier = Classifier(folder)
    if not classifier.explains:
        return None
    return lambda photo: list(classifier.explain(photo).prediction.scores)[:top_k]


def variant_files(folder: ModelFolder, photos: Path, scratch: Path) -> dict[str, Path]:
    """Every conversion as a file: the folder's own where it holds it, the others converted into ``scratch``."""
    import keras

    from benchmarks.ood import split_photos
    from bird_model.images import load_rgb
    from bird_model.pipeline import CALIBRATION_PHOTOS
    from bird_model.quantization import FLOAT, QUANTIZATIONS

    served = str(folder.metrics.serving_variants and next(v.name for v in folder.metrics.serving_variants if v.served))
    files = {FLOAT: folder.float_litert_path, served: folder.path / LITERT_FILE}
    missing = [name for name in QUANTIZATIONS if name not in files]
    if missing:
        model = keras.saving.load_model(folder.model_path, safe_mode=True, compile=False)
        train = split_photos(folder, photos)[0]
        calibration = np.stack([load_rgb(p, folder.image_size) for p in train[:: max(1, len(train) // CALIBRATION_PHOTOS)]])
        for name in missing:
            files[name] = scratch / f"{name}.tflite"
            export_quantized(model, files[name], name, calibration)
    return {name: files[name] for name in (FLOAT, *QUANTIZATIONS)}


def variant_accuracy(classifier: Classifier, folder: ModelFolder, photos: Path) -> float:
    from benchmarks.ood import split_photos

    _, _, validation, labels = split_photos(folder, photos)
    predicted = [folder.classes.index(classifier.classify(photo).label) for photo in validation]
    return float(np.mean(np.array(predicted) == labels))


def unknown_counts(classifier: Classifier, folder: ModelFolder, photos: Path, groups: dict[str, list[Path]]) -> dict[str, int]:
    """Photos of each group called unknown, the threshold calibrated on this conversion's validation scores."""
    from benchmarks.ood import split_photos

    validation = split_photos(folder, photos)[2]
    scores = [classifier.classify(photo).outlier_score for photo in validation]
    threshold = calibrate_threshold(np.array(scores), RunSettings.unknown_pass_rate)
    return {group: sum(classifier.classify(p).outlier_score > threshold for p in paths) for group, paths in groups.items()}


def time_alternately(ways: dict[str, TopK], photos: list[Path], calls: int, warmup: int) -> dict[str, np.ndarray]:
    """Milliseconds per call for each way, the ways taking turns on the same photo."""
    for index in range(warmup):
        for classify in ways.values():
            classify(photos[index % len(photos)])
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for index in range(calls):
        for name, classify in ways.items():
            started = time.perf_counter()
            classify(photos[index % len(photos)])
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: np.array(values) for name, values in timings.items()}


def report(timings: dict[str, np.ndarray]) -> str:
    baseline = float(np.median(next(iter(timings.values()))))
    lines = ["| way | p50 ms | p95 ms | mean ms | speedup (p50) |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, values in timings.items():
        p50, p95 = np.percentile(values, [50, 95])
        lines.append(f"| {name} | {p50:.1f} | {p95:.1f} | {values.mean():.1f} | {baseline / p50:.1f}x |")
    return "\n".join(lines)


def added_cost(timings: dict[str, np.ndarray], base: str, extended: str) -> str:
    """The extension's cost per photo: its paired differences, photo by photo, to the base way."""
    difference = timings[extended] - timings[base]
    p50, p95 = np.percentile(difference, [50, 95])
    return f"Overlay's added cost per photo ({extended} minus {base}, paired): p50 {p50:.2f} ms, p95 {p95:.2f} ms"


def compare_variants(folder: ModelFolder, args: argparse.Namespace, photos: list[Path]) -> None:
    """Each conversion's size, validation accuracy, unknown verdicts on other birds and on the
    pictures scikit-learn and scikit-image ship (requirements-bench.txt), and classify latency, timed in turns."""
    from benchmarks.ood import packaged_images

    with tempfile.TemporaryDirectory() as scratch:
        files = variant_files(folder, args.photos, Path(scratch))
        classifiers = {name: Classifier(folder, path) for name, path in files.items()}
        accuracy = {name: variant_accuracy(classifier, folder, args.photos) for name, classifier in classifiers.items()}
        outliers = {"foreign birds": sorted(p for p in args.foreign.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS),
                    "packaged non-birds": [path for _, path, _ in packaged_images()]}
        unknown = {name: unknown_counts(classifier, folder, args.photos, outliers) for name, classifier in classifiers.items()}
        ways = {name: (lambda c: lambda photo: list(c.classify(photo).scores)[: args.top_k])(classifier)
                for name, classifier in classifiers.items()}
        timings = time_alternately(ways, photos, args.calls, args.warmup)
        sizes = {name: path.stat().st_size for name, path in files.items()}
    served = next((v.name for v in folder.metrics.serving_variants if v.served), "float32 (a folder from before the choice)")
    print(describe_machine())
    print(f"Model {folder.path}, {folder.image_size} px, serving {served}; Classifier.classify, {args.calls} calls per "
          f"conversion over {len(photos)} photos after {args.warmup} warm-up calls\n")
    print("| conversion | size | validation accuracy | p50 ms | p95 ms | "
          + " | ".join(f"{group} unknown ({len(paths)})" for group, paths in outliers.items()) + " |")
    print("| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(outliers))
    for name, values in timings.items():
        p50, p95 = np.percentile(values, [50, 95])
        print(f"| {name} | {sizes[name] / 1e6:.2f} MB | {accuracy[name]:.2%} | {p50:.1f} | {p95:.1f} | "
              + " | ".join(str(unknown[name][group]) for group in outliers) + " |")
    print(f"\nUnknown verdicts: the folder's {OOD_FILE}, its threshold recalibrated on each conversion's own "
          f"validation scores (pass rate {RunSettings.unknown_pass_rate:.0%}), as export does for the served one.")


def main() -> None:
    args = parse_args()
    folder = read_model_folder(args.model)
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not photos:
        raise SystemExit(f"No photos under {args.photos}.")
    if args.variants:
        compare_variants(folder, args, photos)
        return
    served = LITERT_FILE if (folder.path / LITERT_FILE).is_file() else "the Keras model"
    serving, explained = f"serving: Classifier.classify ({served})", "serving + overlay: Classifier.explain"
    ways = {"original: Pillow + model.predict": original_way(folder, args.top_k), serving: serving_path(folder, args.top_k)}
    if (with_overlay := serving_path_with_overlay(folder, args.top_k)) is not None:
        ways[explained] = with_overlay
    timings = time_alternately(ways, photos, args.calls, args.warmup)
    print(describe_machine())
    print(f"Model {folder.path}, {folder.image_size} px; {args.calls} calls per way over {len(photos)} photos "
          f"after {args.warmup} warm-up calls\n")
    print(report(timings))
    if explained in timings:
        print(f"\n{added_cost(timings, serving, explained)}")
    else:
        print(f"\nNo overlay timing: {folder.path}'s model.tflite predates the activation map; retrain it to measure it.")


if __name__ == "__main__":
    main()

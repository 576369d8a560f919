"""One photo from a file on disk to its top-k classes: the original way against the serving path.

    python benchmarks/latency.py [--model runs/parrots] [--photos ../shared/datasets/parrots]

The overlay's cost is measured for a model folder from today's train.py (its model.tflite has
the activation map); an older folder is timed without it.

The original way is the issue's baseline: Pillow decode and resize, pixels scaled by 1/255
(as that code did; this model scales its own 0-255 input, so only the timing is
meaningful), then ``model.predict``. The serving path is ``Classifier.classify``, which
serves ``model.tflite`` when the folder has one; with the overlay it is ``Classifier.explain``
(the same forward pass, plus the activation map drawn over the photo), and the overlay's added
cost is the median of its per-photo difference to ``classify``. All run in one process and
alternate call by call, so a busy neighbour on a shared machine slows them alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe_machine
from bird_model.artifacts import LITERT_FILE, ModelFolder, read_model_folder
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.inference import Classifier

TopK = Callable[[Path], list[str]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"), help="model folder (default: runs/parrots)")
    parser.add_argument("--photos", type=Path, default=Path("../shared/datasets/parrots"),
                        help="folder searched recursively for photos (default: ../shared/datasets/parrots)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per way (default: 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per way first (default: 10)")
    parser.add_argument("--top-k", type=int, default=3)
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


def main() -> None:
    args = parse_args()
    folder = read_model_folder(args.model)
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not photos:
        raise SystemExit(f"No photos under {args.photos}.")
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

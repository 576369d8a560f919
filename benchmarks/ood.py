"""Does the model say "not one of my birds" for photos unlike its training data?

Run by hand from the repository root (needs scikit-learn and scikit-image, for their
sample images only; the product does not depend on them):

    python benchmarks/ood.py --model runs/parrots --data ../shared/datasets/parrots

It refits the outlier detector from the model folder's own split (training photos for the
class means, validation photos for the threshold), then scores in-distribution validation
photos against out-of-distribution ones: every picture scikit-learn and scikit-image ship,
noise and flat colours. Each candidate score is reported, next to the max-softmax baseline,
and the default method's per-image verdicts show which outliers got through.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ood_methods import DEFAULT_METHOD, METHODS, auroc, fit_detector
from bird_model import artifacts
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.images import load_rgb
from bird_model.ood import OutlierDetector, calibrate_threshold

MIN_PACKAGED_SIDE = 64
"""scikit-image also ships test fixtures of a few pixels (a 14x25 GIF, a 10x15 TIFF): not pictures."""

FLAT_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "sky": (135, 206, 235),
}
NOISE_IMAGES = 20


@dataclass(frozen=True)
class Photos:
    """Photos of one kind with the model's answers for them, in the same order."""

    names: list[str]
    groups: list[str]
    features: np.ndarray
    probabilities: np.ndarray


def main() -> None:
    options = parse_arguments()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    folder = artifacts.read_model_folder(options.model)
    train_paths, train_labels, validation_paths, validation_labels = split_photos(folder, options.data)
    outliers = packaged_images() + noise_images(NOISE_IMAGES) + flat_colour_images()

    started = time.monotonic()
    network = load_network(folder)
    train = run_model(network, folder.image_size, [(p.name, p, "train") for p in train_paths])
    validation = run_model(network, folder.image_size, [(p.name, p, "validation") for p in validation_paths])
    outside = run_model(network, folder.image_size, outliers)
    seconds = time.monotonic() - started

    print_header(folder, options, train, validation, outside, seconds)
    detectors = {
        method: fit_detector(train.features, train_labels, validation.features, options.target, method)
        for method in METHODS
    }
    results = {
        method: evaluate(detector, validation, outside, options.target) for method, detector in detectors.items()
    }
    held_out = {
        method: held_out_class(train, train_labels, validation, validation_labels, options.target, method)
        for method in METHODS
    }
    baseline = evaluate_softmax(validation, outside, options.target)
    print_comparison(detectors, results, held_out, baseline)
    print_verdicts(detectors[DEFAULT_METHOD], outside, folder.classes)
    print_markdown(results[DEFAULT_METHOD], baseline, folder)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("runs/parrots"), help="model folder (default: runs/parrots)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/datasets/parrots"),
        help="the dataset the model was trained on (default: ../shared/datasets/parrots)",
    )
    parser.add_argument("--target", type=float, default=0.97, help="in-distribution pass rate to calibrate for")
    return parser.parse_args()


def split_photos(folder: artifacts.ModelFolder, data: Path) -> tuple[list[Path], np.ndarray, list[Path], np.ndarray]:
    """The split's photos found under ``data`` by content hash, so the dataset may have moved."""
    split = json.loads((folder.path / artifacts.SPLIT_FILE).read_text(encoding="utf-8"))
    by_hash = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in sorted(data.rglob("*")) if p.is_file()}
    missing = [row["path"] for side in ("train", "validation") for row in split[side] if row["sha256"] not in by_hash]
    if missing:
        sys.exit(
            f"{len(missing)} photos of {folder.path / artifacts.SPLIT_FILE} are not under {data}, e.g. {missing[0]}"
        )

    def side(name: str) -> tuple[list[Path], np.ndarray]:
        rows = split[name]
        return [by_hash[row["sha256"]] for row in rows], np.array([folder.classes.index(row["label"]) for row in rows])

    return (*side("train"), *side("validation"))


def packaged_images() -> list[tuple[str, Path, str]]:
    """Every picture file scikit-learn and scikit-image ship in their wheels (no download)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    sources = [("scikit-learn", Path(name)) for name in load_sample_images().filenames]
    for path in sorted(Path(skimage.data.data_dir).iterdir()):
        if path.suffix.lower() in SUPPORTED_EXTENSIONS:
            with Image.open(path) as image:
                if min(image.size) >= MIN_PACKAGED_SIDE:
                    sources.append(("scikit-image", path))
    return [(path.name, path, package) for package, path in sources]


def noise_images(count: int, side: int = 256) -> list[tuple[str, bytes, str]]:
    """Uniform noise at several grain sizes, in colour and in gray, encoded as uploads are."""
    rng = np.random.default_rng(0)
    images = []
    for index in range(count):
        grain = (1, 2, 4, 8, 16)[index % 5]
        channels = 3 if index < count * 3 // 4 else 1
        cells = rng.integers(0, 256, size=(side // grain, side // grain, channels), dtype=np.uint8)
        pixels = np.repeat(np.repeat(cells, grain, axis=0), grain, axis=1).squeeze()
        kind = "colour" if channels == 3 else "gray"
        images.append((f"noise {kind} {grain}px #{index}", png_bytes(pixels), "noise"))
    return images


def flat_colour_images(side: int = 256) -> list[tuple[str, bytes, str]]:
    return [
        (f"flat {name}", png_bytes(np.full((side, side, 3), rgb, np.uint8)), "flat colour")
        for name, rgb in FLAT_COLOURS.items()
    ]


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def load_network(folder: artifacts.ModelFolder):
    import keras

    from bird_model.model import features_and_probabilities

    model = keras.saving.load_model(folder.model_path, safe_mode=True, compile=False)
    return features_and_probabilities(model)


def run_model(network, size: int, photos: Sequence[tuple[str, Path | bytes, str]], batch_size: int = 32) -> Photos:
    """Decode with the product's decoder and take features and probabilities in one pass."""
    pixels = np.stack([load_rgb(source, size) for _, source, _ in photos]).astype(np.float32)
    features, probabilities = network.predict(pixels, batch_size=batch_size, verbose=0)
    return Photos([name for name, _, _ in photos], [group for _, _, group in photos], features, probabilities)


def evaluate(detector: OutlierDetector, inside: Photos, outside: Photos, target: float) -> dict:
    return rates(detector.score(inside.features), detector.score(outside.features), detector.threshold, outside, target)


def evaluate_softmax(inside: Photos, outside: Photos, target: float) -> dict:
    """The baseline: one minus the top probability, thresholded the same way."""
    inside_scores = 1 - inside.probabilities.max(axis=1)
    return rates(
        inside_scores,
        1 - outside.probabilities.max(axis=1),
        calibrate_threshold(inside_scores, target),
        outside,
        target,
    )


def rates(inside: np.ndarray, outside: np.ndarray, threshold: float, photos: Photos, target: float) -> dict:
    packaged = np.array([group.startswith("scikit") for group in photos.groups])
    return {
        "auroc_packaged": auroc(inside, outside[packaged]),
        "auroc_synthetic": auroc(inside, outside[~packaged]),
        "auroc_all": auroc(inside, outside),
        "pass_validation": float(np.mean(inside <= threshold)),
        "pass_left_out": leave_one_out_pass_rate(inside, target),
        "unknown_packaged": float(np.mean(outside[packaged] > threshold)),
        "unknown_synthetic": float(np.mean(outside[~packaged] > threshold)),
        "counts": (len(inside), int(packaged.sum()), int((~packaged).sum())),
        "margin": float(np.min(outside) / threshold),
    }


def leave_one_out_pass_rate(scores: np.ndarray, target: float) -> float:
    """Each validation photo judged by a threshold calibrated without it: the honest pass rate.

    The in-sample pass rate is high by construction; this one is what a new photo of the
    same kind should expect.
    """
    passed = [scores[i] <= calibrate_threshold(np.delete(scores, i), target) for i in range(len(scores))]
    return float(np.mean(passed))


def held_out_class(
    train: Photos,
    train_labels: np.ndarray,
    validation: Photos,
    validation_labels: np.ndarray,
    target: float,
    method: str,
) -> tuple[float, float]:
    """Near-distribution check: refit without one class, whose validation photos become the outliers.

    The backbone was fine-tuned on that class too, so this flatters every method; it still
    ranks them on "a bird, but not one of mine". Returns the mean AUROC and unknown rate.
    """
    aurocs, unknown = [], []
    for left_out in np.unique(train_labels):
        kept = train_labels != left_out
        relabelled = np.searchsorted(np.unique(train_labels[kept]), train_labels[kept])
        known = validation.features[validation_labels != left_out]
        detector = fit_detector(train.features[kept], relabelled, known, target, method)
        foreign = validation.features[validation_labels == left_out]
        aurocs.append(auroc(detector.score(known), detector.score(foreign)))
        unknown.append(float(detector.is_unknown(foreign).mean()))
    return float(np.mean(aurocs)), float(np.mean(unknown))


def print_header(
    folder: artifacts.ModelFolder,
    options: argparse.Namespace,
    train: Photos,
    validation: Photos,
    outside: Photos,
    seconds: float,
) -> None:
    print(f"Model folder: {folder.path}  (image size {folder.image_size}, classes: {', '.join(folder.classes)})")
    weights = folder.config.get("base_weights")
    if weights != "imagenet":
        print(
            f"NOTE: this model was trained from base weights {weights!r}, not ImageNet: a stand-in backbone "
            "(see ../shared/weights/README.md). Figures with ImageNet weights will differ."
        )
    print(
        f"Photos: {len(train.names)} training (class means), {len(validation.names)} validation "
        f"(threshold, and the in-distribution test), {len(outside.names)} out-of-distribution; "
        f"target pass rate {options.target:.0%}"
    )
    print(f"Machine: {machine()}; feature extraction {seconds:.0f} s\n")


def print_comparison(
    detectors: dict[str, OutlierDetector],
    results: dict[str, dict],
    held_out: dict[str, tuple[float, float]],
    baseline: dict,
) -> None:
    (inside, packaged, synthetic) = baseline["counts"]
    print(f"AUROC: validation parrots ({inside}) vs packaged images ({packaged}) / synthetic ({synthetic}) / all")
    print(
        f"{'score':24s} {'packaged':>8s} {'synth':>6s} {'all':>6s} | {'pass val':>8s} {'pass LOO':>8s} | "
        f"{'unk pkg':>7s} {'unk syn':>7s} | {'minOOD/thr':>10s} | held-out class AUROC"
    )
    for method, result in results.items():
        label = f"{method}{' (default)' if method == DEFAULT_METHOD else ''}"
        if method == "mahalanobis":
            label += f" s={detectors[method].shrinkage:.2f}"
        print(row(label, result) + " | {:.3f}, {:.0%} unknown".format(*held_out[method]))
    print(row("max-softmax baseline", baseline) + " |")
    print()


def row(label: str, result: dict) -> str:
    return (
        f"{label:24s} {result['auroc_packaged']:8.3f} {result['auroc_synthetic']:6.3f} {result['auroc_all']:6.3f} | "
        f"{result['pass_validation']:8.1%} {result['pass_left_out']:8.1%} | "
        f"{result['unknown_packaged']:7.1%} {result['unknown_synthetic']:7.1%} | {result['margin']:10.2f}"
    )


def print_verdicts(detector: OutlierDetector, outside: Photos, classes: list[str]) -> None:
    """What a user would see for each outlier, and what the softmax alone would have claimed."""
    scores = detector.score(outside.features) / detector.threshold
    print(f"Per image ({detector.method}; score / threshold, above 1 = unknown), lowest first:")
    for index in np.argsort(scores):
        top = int(np.argmax(outside.probabilities[index]))
        verdict = "unknown" if scores[index] > 1 else "PASSED as a bird"
        print(
            f"  {scores[index]:6.2f}  {verdict:16s} {outside.groups[index]:13s} {outside.names[index]:28s} "
            f"softmax: {classes[top]} {outside.probabilities[index, top]:.0%}"
        )
    passed = [outside.names[i] for i in np.flatnonzero(scores <= 1)]
    print(f"Passed: {', '.join(passed) if passed else 'none'}\n")


def print_markdown(result: dict, baseline: dict, folder: artifacts.ModelFolder) -> None:
    inside, packaged, synthetic = result["counts"]
    print("Markdown for benchmarks/README.md:\n")
    print(
        f"| Score | AUROC packaged ({packaged}) | AUROC all OOD ({packaged + synthetic}) | "
        f"Validation pass ({inside}) | Pass, left out | Unknown packaged | Unknown noise + flat ({synthetic}) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, values in ((f"Feature distance ({DEFAULT_METHOD})", result), ("Max softmax (baseline)", baseline)):
        print(
            f"| {label} | {values['auroc_packaged']:.3f} | {values['auroc_all']:.3f} | {values['pass_validation']:.1%} | "
            f"{values['pass_left_out']:.1%} | {values['unknown_packaged']:.1%} | {values['unknown_synthetic']:.1%} |"
        )
    print(
        f"\nModel `{folder.config.get('model_name')}` ({folder.config.get('base_weights')} base weights), "
        f"{folder.image_size} px; {machine()}."
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, {platform.system()}"


if __name__ == "__main__":
    main()

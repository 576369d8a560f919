"""A bird species the model never saw: is it called unknown?

Run by hand from the repository root (needs requirements-bench.txt; trains 4 models per seed,
about a minute each on 2 cores at the parrots' size):

    python benchmarks/ood_species.py --data ../shared/datasets/parrots \
        --base-weights ../shared/weights/mobilenet_v2_1.0_notop.proxy.weights.h5 --seeds 42 1

For each seed and each class, ``train.py`` trains a model on every class but that one (a copy of
the dataset without it under ``--runs``), then each candidate score of ``benchmarks/ood_methods.py``
is fitted on that model's own split and counts how many photos of the left-out class it calls
unknown. That class is the nearest outlier there is: a bird of the same kind the backbone was
never fine-tuned on, which ``benchmarks/ood.py``'s held-out-class check cannot give (its backbone
saw every class). It decides which score ships. Folders already under ``--runs`` are reused, so
a second run only refits. ``--foreign`` photos (../shared/datasets/foreign-birds) are reported
apart and never decide: that folder's README asks not to tune to it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe_machine
from benchmarks.ood import load_network, run_model, split_photos
from benchmarks.ood_methods import DEFAULT_METHOD, METHODS, fit_scorer
from bird_model import artifacts, ood
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.settings import RunSettings, TrainingOptions

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    options = parse_arguments()
    ood.SHRINKAGE = options.shrinkage
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    classes = sorted(p.name for p in options.data.iterdir() if p.is_dir() and not p.name.startswith("."))
    foreign = photos_in(options.foreign)
    print(f"{describe_machine()}\nLeft out in turn: {', '.join(classes)}; seeds {options.seeds}; "
          f"shrinkage {options.shrinkage}\n")
    caught: dict[str, list[float]] = {method: [] for method in METHODS}
    foreign_caught: dict[str, list[int]] = {method: [] for method in METHODS}
    runs = []
    for seed in options.seeds:
        for left_out in classes:
            folder = trained_without(left_out, seed, classes, options)
            rates, foreign_counts = score_run(folder, options, photos_in(options.data / left_out), foreign)
            runs.append(f"{left_out} (seed {seed})")
            for method in METHODS:
                caught[method].append(rates[method])
                foreign_caught[method].append(foreign_counts[method])
    print_table(runs, caught, foreign_caught, len(foreign))
    print(f"\n{describe_machine()}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/parrots"),
                        help="a folder-per-class dataset (default: ../shared/datasets/parrots)")
    parser.add_argument("--base-weights", default="imagenet", help="passed to train.py (default: imagenet)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[TrainingOptions.seed], help=f"training seeds (default: {TrainingOptions.seed})")
    parser.add_argument("--runs", type=Path, default=Path("runs/left-out"),
                        help="where the datasets without one class and their models go (default: runs/left-out)")
    parser.add_argument("--foreign", type=Path, default=Path("../shared/datasets/foreign-birds"),
                        help="other birds, reported apart (default: ../shared/datasets/foreign-birds)")
    parser.add_argument("--shrinkage", type=float, default=ood.SHRINKAGE,
                        help=f"the product score's covariance shrinkage, to check it is not tuned (default: {ood.SHRINKAGE})")
    parser.add_argument("--target", type=float, default=RunSettings.unknown_pass_rate,
                        help=f"in-distribution pass rate to calibrate for (default: {RunSettings.unknown_pass_rate})")
    return parser.parse_args()


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def trained_without(left_out: str, seed: int, classes: list[str], options: argparse.Namespace) -> Path:
    """The model folder trained on every class but ``left_out``; trained now unless it exists."""
    output = options.runs / f"without-{slug(left_out)}-seed{seed}"
    if (output / artifacts.RUN_CONFIG_FILE).is_file():
        return output
    data = options.runs / "data" / f"without-{slug(left_out)}"
    if not data.is_dir():
        for name in classes:
            if name != left_out:
                shutil.copytree(options.data / name, data / name)
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--output", str(output), "--overwrite",
               "--seed", str(seed), "--no-quantize", "--base-weights", options.base_weights]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"Trained without {left_out} (seed {seed}) in {time.monotonic() - started:.0f} s: {output}")
    return output


def score_run(folder_path: Path, options: argparse.Namespace, left_out: list[Path], foreign: list[Path]
              ) -> tuple[dict[str, float], dict[str, int]]:
    """Each candidate fitted on the folder's split; the share of ``left_out`` and count of ``foreign`` unknown."""
    folder = artifacts.read_model_folder(folder_path)
    train_paths, train_labels, validation_paths, _ = split_photos(folder, options.data)
    network, head = load_network(folder)

    def features(paths: list[Path], group: str) -> np.ndarray:
        return run_model(network, folder.image_size, [(p.name, p, group) for p in paths]).features

    train, validation = features(train_paths, "train"), features(validation_paths, "validation")
    unseen, others = features(left_out, "left out"), features(foreign, "foreign")
    rates, counts = {}, {}
    for method in METHODS:
        scorer = fit_scorer(train, train_labels, validation, options.target, method, head)
        rates[method] = float(np.mean(scorer.is_unknown(unseen)))
        counts[method] = int(np.sum(scorer.is_unknown(others))) if len(others) else 0
    return rates, counts


def print_table(runs: list[str], caught: dict[str, list[float]], foreign: dict[str, list[int]], foreign_count: int) -> None:
    print(f"\nLeft-out class called unknown (validation photos pass at the target rate); foreign birds of "
          f"{foreign_count} unknown, never used to choose:\n")
    print("| score | left-out class unknown, mean | per run | foreign birds unknown, per run |")
    print("| --- | ---: | --- | --- |")
    for method in METHODS:
        label = f"**`{method}` (product)**" if method == DEFAULT_METHOD else f"`{method}`"
        per_run = " ".join(f"{rate:.0%}" for rate in caught[method])
        print(f"| {label} | {np.mean(caught[method]):.0%} | {per_run} | {' '.join(map(str, foreign[method]))} |")
    print(f"\nRuns, in order: {'; '.join(runs)}.")


if __name__ == "__main__":
    main()

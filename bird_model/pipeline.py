"""One training run from photos to a complete model folder, read top to bottom.

check the output → read and check the photos → split → build → train in two phases →
evaluate → write the folder (staged, then moved into place).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bird_model import artifacts, dataset_files, quantization
from bird_model.card import default_model_name, render_model_card
from bird_model.class_names import read_class_names
from bird_model.checkpoints import check_resumable, open_checkpoint
from bird_model.cluster import TF_CONFIG_ENV, check_resume, current_role
from bird_model.console import step
from bird_model.curves import save_training_curves
from bird_model.data import Dataset, Split, load_dataset, split_dataset
from bird_model.evaluation import Metrics, OutlierMetrics, ServingVariant, classification_metrics, save_confusion_matrix
from bird_model.monitoring import compute_baseline
from bird_model.ood import calibrated, fit_detector
from bird_model.release import Parent, compare_with_parent, print_comparison
from bird_model.sources import ResolvedSource
from bird_model.settings import RunSettings


def run_training(
    sources: list[ResolvedSource], settings: RunSettings, parent: Parent | None = None
) -> artifacts.ModelFolder | None:
    """Train on ``sources`` and write the model folder at ``settings.output``.

    With a ``parent`` (the published model this run would replace), the photos that
    validated the parent stay in validation, and the new model is compared with the
    parent on them. In a multi-worker run (``TF_CONFIG``) every worker trains, only the
    chief writes; the others return None once training is done, having written nothing.
    """
    started = time.monotonic()
    role = current_role()
    check_resume(role, settings.resume)
    if role.is_chief:
        check_resumable(settings.output, settings.resume, settings.overwrite)
        artifacts.check_output_free(settings.output, settings.overwrite)
    weights = resolve_base_weights(settings.base_weights)

    dataset = load_dataset(
        [source.path for source in sources],
        settings.image_size,
        settings.cache_dir,
        links_within=tuple(source.links_within for source in sources if source.links_within),
    )
    print_dataset_report(dataset)
    display_names = read_class_names(settings.class_names_file, dataset.classes) if settings.class_names_file else {}
    own_outliers = None
    if settings.outlier_photos and role.is_chief:  # read now: a wrong folder stops the run before training
        own_outliers = quantization.read_own_outliers(settings.outlier_photos, settings.image_size)
    pinned = parent.validation_hashes if parent else frozenset()
    split = split_dataset(dataset, settings.validation_fraction, settings.training.seed, keep_in_validation=pinned)
    print(f"Split (seed {settings.training.seed}): {len(split.train)} training, {len(split.validation)} validation photos")

    checkpoint = open_checkpoint(settings.output, resume_record(settings, dataset)) if role.is_chief else None
    if settings.resume and checkpoint is not None:
        print(f"Resuming from {checkpoint.folder}: {checkpoint.progress().describe()}")

    # Keras and TensorFlow load only now, so option and dataset errors come back instantly.
    from bird_model.devices import choose_devices
    from bird_model.model import build_classifier, features_and_probabilities, save_keras_model, serving_copy
    from bird_model.inputs import Photos
    from bird_model.training import batched_predict, make_reproducible, train_two_phases, worker_lost

    devices = choose_devices()  # first of all TensorFlow calls: a multi-worker strategy must configure it
    print(devices.describe() + (f"; {role.describe()}" if role.distributed else ""))
    make_reproducible(settings.training.seed)
    train, validation = Photos.of(dataset, split.train), Photos.of(dataset, split.validation)
    with devices.strategy.scope(), worker_lost(role):
        trained = _with_base_weights(build_classifier, len(dataset.classes), settings.image_size, weights)
        histories = train_two_phases(trained, train, validation, settings.training, checkpoint, role)
    if checkpoint is None:
        print(f"Trained as {role.describe()} in {time.monotonic() - started:.0f} s; worker 0 writes the model folder.")
        return None
    # Evaluated, exported and saved in float32 on one device: exactly what will be served.
    with step("Copying the trained weights into the float32 model that is served"):
        model = serving_copy(trained)

    serving = features_and_probabilities(model)
    with step(f"Evaluating on {len(split.train)} training and {len(split.validation)} validation photos"):
        train_features, train_probabilities = batched_predict(serving, train)
        validation_features, validation_probabilities = batched_predict(serving, validation)
    with step("Calibrating the unknown-photo threshold on the validation photos"):
        # Class means from training photos, the "unknown" threshold from validation photos.
        detector = fit_detector(train_features, train.labels, validation_features, settings.unknown_pass_rate)
    metrics = Metrics(
        validation=classification_metrics(validation.labels, validation_probabilities, dataset.classes),
        training=classification_metrics(train.labels, train_probabilities, dataset.classes),
    )
    if parent is not None:
        metrics = replace(metrics, parent_comparison=compare_with_parent(parent, dataset, split, validation_probabilities))
        print_comparison(metrics.parent_comparison)
    config = run_config(sources, settings, dataset, split)
    config["parent"] = None if parent is None else parent.record()
    staging = artifacts.staging_folder(settings.output)
    try:
        quantizations = quantization.QUANTIZATIONS if settings.quantize else ()
        with step("Saving the Keras model and converting it to LiteRT: "
                  + ", ".join([f"{quantization.FLOAT} (checked against Keras)", *quantizations])):
            save_keras_model(model, staging)
            calibration = Photos.of(dataset, split.train[:: max(1, len(split.train) // CALIBRATION_PHOTOS)])
            variants = quantization.convert_variants(model, staging, np.concatenate(list(calibration.arrays())),
                                                     quantizations)
        with step(f"Choosing the served {artifacts.LITERT_FILE}: each conversion's validation accuracy, "
                  "unknown verdicts and speed"):
            reference = quantization.reference_outliers(settings.image_size)
            own = own_outliers if own_outliers is not None else reference[:0]
            runs = quantization.run_variants(variants, validation.arrays(), np.concatenate([reference, own]))
            reports = quantization.choose(runs, validation.labels, detector, settings.unknown_pass_rate, len(own))
            quantization.install_served(reports, variants, staging)
            served = next(run for run, report in zip(runs, reports) if report.served)
            # The served conversion's own features set the threshold and the baseline: what the app will see.
            detector = calibrated(detector, served.validation_features, settings.unknown_pass_rate)
        print_variants(reports)
        metrics = replace(metrics, serving_variants=reports, outliers=OutlierMetrics(
            method=detector.method,
            threshold=detector.threshold,
            validation_pass_rate=float(np.mean(~detector.is_unknown(served.validation_features))),
        ))
        with step("Writing the model folder (baseline, metrics, pictures, model card, examples)"):
            detector.save(staging / artifacts.OOD_FILE)
            baseline = compute_baseline(dataset.classes, train.labels, served.validation_probabilities,
                                        served.validation_features, detector)
            artifacts.write_json(staging / artifacts.BASELINE_FILE, baseline.to_json())
            write_folder_documents(staging, config, metrics, histories, dataset, split, display_names)
        artifacts.commit_folder(staging, settings.output)
        checkpoint.remove()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    folder = artifacts.read_model_folder(settings.output)
    print_summary(folder, time.monotonic() - started)
    return folder


class BaseWeightsError(RuntimeError):
    """The ImageNet weights could not be downloaded; the message says how to train without them."""


def _with_base_weights(build: Callable[..., Any], classes: int, image_size: int, weights: str | None) -> Any:
    """Build the model, turning a failed ImageNet download (offline, a proxy, a firewall) into one line.

    Keras' ``get_file`` raises a bare ``Exception`` for any failed download, three tracebacks deep.
    """
    try:
        return build(classes, image_size, weights)
    except Exception as error:
        if weights != "imagenet":
            raise
        reason = (str(error).splitlines() or [type(error).__name__])[0].rsplit(" -- ", 1)[-1]
        raise BaseWeightsError(
            f"the ImageNet weights for MobileNetV2 could not be downloaded ({reason}); train offline with "
            "--base-weights PATH (a MobileNetV2 no-top weights file) or --base-weights none (random start)."
        ) from error


def check_base_weights(option: str, image_size: int) -> None:
    """The starting weights, made sure of before any photo is read: an offline first run should hear
    about the weights at once, not after checking thousands of photos.

    ``imagenet`` is checked by building the base with them, the very call training makes, which
    downloads them once into Keras' cache (or finds them there); raises :class:`BaseWeightsError`
    when that fails, ``FileNotFoundError`` for a weights file that does not exist.
    """
    if resolve_base_weights(option) == "imagenet":
        if os.environ.get(TF_CONFIG_ENV):
            # Not here under TF_CONFIG: the multi-worker strategy must be TensorFlow's first call
            # (devices.choose_devices); run_training builds with the weights after it, the same way.
            return
        from bird_model.model import build_classifier

        _with_base_weights(build_classifier, 2, image_size, "imagenet")


def resolve_base_weights(option: str) -> str | None:
    """``imagenet`` and ``none`` are keywords; anything else must be an existing weights file."""
    if option == "imagenet":
        return option
    if option.lower() == "none":
        return None
    if not Path(option).is_file():
        raise FileNotFoundError(f"--base-weights {option}: no such file (use imagenet, none, or a weights file path).")
    return str(Path(option).resolve())


def resume_record(settings: RunSettings, dataset: Dataset) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed: every training option, and the same photos."""
    return {**asdict(settings.training), "image_size": settings.image_size, "base_weights": settings.base_weights,
            "validation_fraction": settings.validation_fraction, "dataset": dataset.fingerprint()}


def run_config(sources: list[ResolvedSource], settings: RunSettings, dataset: Dataset, split: Split) -> dict:
    """Everything needed to understand, reproduce or serve this run."""
    import keras
    import tensorflow as tf

    return {
        "format_version": artifacts.FORMAT_VERSION,
        "model_name": settings.model_name or default_model_name([source.record() for source in sources]),
        "license": settings.license,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": dataset.classes,
        "num_classes": len(dataset.classes),
        "image_size": settings.image_size,
        "preprocessing": {
            "decode": "Pillow; EXIF orientation applied; first frame of animations",
            "color": "8-bit RGB; transparency composited onto white; 16-bit scaled to 8-bit",
            "resize": f"bilinear to {settings.image_size}x{settings.image_size} (aspect ratio not kept)",
            "scaling": "inside the model: pixels / 127.5 - 1 (MobileNetV2), input is raw 0-255 RGB",
        },
        "base_weights": Path(settings.base_weights).name,  # a weights file by name: its path is the trainer's
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "training": asdict(settings.training),
        "dataset": {
            "sources": [source.record() for source in sources],
            "fingerprint": dataset.fingerprint(),
            "usable": len(dataset.samples),
            "rejected": len(dataset.rejections),
            "validation_fraction": settings.validation_fraction,
            "split_counts": {
                "train": _class_counts(dataset, split.train),
                "validation": _class_counts(dataset, split.validation),
            },
        },
    }


def write_folder_documents(
    folder: Path, config: dict, metrics: Metrics, histories: dict, dataset: Dataset, split: Split,
    display_names: dict[str, list[str]],
) -> None:
    artifacts.write_json(folder / artifacts.LABELS_FILE, artifacts.labels_document(dataset.classes))
    for language, names in display_names.items():
        artifacts.write_json(folder / artifacts.display_names_file(language), names)
    artifacts.write_json(folder / artifacts.RUN_CONFIG_FILE, config)
    artifacts.write_json(folder / artifacts.METRICS_FILE, metrics.to_json())
    artifacts.write_json(folder / artifacts.HISTORY_FILE, histories)
    artifacts.write_json(folder / artifacts.DATASET_REPORT_FILE, dataset_files.dataset_report(dataset))
    artifacts.write_json(folder / artifacts.SPLIT_FILE, dataset_files.split_listing(dataset, split))
    save_confusion_matrix(metrics.validation.confusion_matrix, dataset.classes, folder / artifacts.CONFUSION_FILE)
    save_training_curves(histories, folder / artifacts.CURVES_FILE)
    render_model_card(config, metrics).save(folder / artifacts.CARD_FILE)
    dataset_files.save_examples(folder, dataset, split)


CALIBRATION_PHOTOS = 100
"""Training photos, spread evenly over the split, whose activation ranges the full-integer model is fitted to."""


def print_variants(reports: list[ServingVariant]) -> None:
    """The export's measurement of each conversion, and which one is served (the card keeps the same table)."""
    for report in reports:
        verdict = "served" if report.served else ("the reference" if report.name == quantization.FLOAT
                                                  else "qualifies" if report.qualifies else "refused")
        print(f"  {report.name:13s} {report.size_bytes / 1e6:5.2f} MB, validation accuracy {report.accuracy:.2%}, "
              f"p50 {report.p50_ms:.1f} ms, {report.outliers_unknown}/{report.outliers} reference outliers unknown"
              + (f", {report.own_outliers_unknown}/{report.own_outliers} of --outlier-photos" if report.own_outliers else "")
              + f": {verdict}")


CLASSES_LISTED_UP_TO = 20
"""Classes whose counts the run prints one per line; beyond, a range (500 lines would bury the rest)."""


def print_dataset_report(dataset: Dataset) -> None:
    timings = dataset.timings
    print(f"Dataset: {len(dataset.samples)} usable photos in {len(dataset.classes)} classes")
    print(f"Checked in {timings.check_seconds:.1f} s ({timings.from_cache} photos from the cache in "
          f"{dataset.cache.root}); near-duplicates grouped in {timings.grouping_seconds:.1f} s")
    counts = dataset.counts()
    if len(counts) <= CLASSES_LISTED_UP_TO:
        for name, count in counts.items():
            print(f"  {count:5d}  {name}")
    else:
        fewest, most = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
        spread = (f"{counts[fewest]} in every class" if counts[fewest] == counts[most] else
                  f"{counts[fewest]} ({fewest}) to {counts[most]} ({most}), "
                  f"median {np.median(list(counts.values())):.0f}")
        print(f"  photos per class: {spread}; every class's count is in {artifacts.DATASET_REPORT_FILE}")
    if dataset.rejections:
        print(f"Skipped {len(dataset.rejections)} files:")
        for rejection in dataset.rejections:
            print(f"  {rejection.path}: {rejection.reason}")
    groups = dataset.near_duplicate_groups()
    if groups:
        print(f"{len(groups)} groups of near-identical photos, each kept on one side of the split")


def print_summary(folder: artifacts.ModelFolder, seconds: float) -> None:
    validation = folder.metrics.validation
    print(
        f"Done in {seconds:.0f} s. Validation accuracy {validation.accuracy:.2%} "
        f"({validation.correct}/{validation.count}), macro F1 {validation.macro_f1:.3f}, "
        f"training accuracy {folder.metrics.training.accuracy:.2%}."
    )
    print(f"Model folder: {folder.path}")


def _class_counts(dataset: Dataset, indices: list[int]) -> dict[str, int]:
    counts = {name: 0 for name in dataset.classes}
    for index in indices:
        counts[dataset.samples[index].label] += 1
    return counts

"""What a model folder records of the photos that made it: the dataset report, the split listing, examples.

Training writes these files; serving only reads the folder (:mod:`bird_model.artifacts`), so this
module, which needs the dataset scanner's records, stays on the training side of the import graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from bird_model.artifacts import EXAMPLES_DIR, file_stem
from bird_model.data import Dataset, Split
from bird_model.images import to_rgb


def dataset_report(dataset: Dataset) -> dict[str, Any]:
    """What was used, what was skipped and why, and which photos were grouped as near-identical.

    Files are named by source (the index into run_config.json's ``dataset.sources``) and path
    inside it, never by absolute path: the folder is published.
    """
    return {
        "usable": len(dataset.samples),
        "counts": dataset.counts(),
        "skipped": [{**_located(dataset, r.path), "reason": r.reason} for r in dataset.rejections],
        "near_duplicate_groups": [
            [_located(dataset, s.path) for s in group] for group in dataset.near_duplicate_groups()
        ],
    }


def split_listing(dataset: Dataset, split: Split) -> dict[str, list[dict[str, Any]]]:
    """Each split's files with content hashes, so a split can be audited or reproduced."""
    def rows(indices: list[int]) -> list[dict[str, Any]]:
        return [
            {**_located(dataset, dataset.samples[i].path), "label": dataset.samples[i].label,
             "sha256": dataset.samples[i].sha256}
            for i in indices
        ]

    return {"train": rows(split.train), "validation": rows(split.validation)}


def _located(dataset: Dataset, path: Path) -> dict[str, Any]:
    source, relative = dataset.locate(path)
    return {"source": source, "path": relative}


def save_examples(folder: Path, dataset: Dataset, split: Split, max_side: int = 320) -> None:
    """One validation photo per class, scaled down, for the demo's example gallery."""
    examples = folder / EXAMPLES_DIR
    examples.mkdir(exist_ok=True)
    for label in dataset.classes:
        index = next(
            (i for i in split.validation + split.train if dataset.samples[i].label == label), None
        )
        if index is None:
            continue
        with Image.open(dataset.samples[index].path) as image:
            photo = to_rgb(ImageOps.exif_transpose(image))
            photo.thumbnail((max_side, max_side))
            photo.save(examples / f"{file_stem(label)}.jpg", quality=88)

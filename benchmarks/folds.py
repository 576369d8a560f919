"""Cross-validation folds for ``benchmarks/accuracy.py``: stratified, and group-aware like the product's split."""

from __future__ import annotations

from collections import Counter

from bird_model.data import Dataset, DatasetError, Split, shuffled_groups_by_class


def stratified_folds(dataset: Dataset, k: int, seed: int) -> list[Split]:
    """``k`` splits for cross-validation: their validation sides partition the dataset.

    Stratified and group-aware like :func:`bird_model.data.split_dataset`, so no fold is graded on a
    near-duplicate of a training photo. Class by class, groups (largest first, else in the
    seeded random order) go to the fold holding the fewest photos of their labels so far
    (a group may mix classes), ties to the fold with the fewest photos overall: a class's
    counts per fold differ by about its largest group at most, and the classes' remainders
    land in different folds. Every class needs at least ``k`` groups, so that every fold
    can validate every class.
    """
    groups_by_class = shuffled_groups_by_class(dataset, seed)
    fewest_label = min(groups_by_class, key=lambda label: len(groups_by_class[label]))
    fewest = len(groups_by_class[fewest_label])
    if not 2 <= k <= fewest:
        raise DatasetError(
            f"{k}-fold cross-validation needs 2 <= k <= the number of photo groups (near-duplicates "
            f"count once) of every class; '{fewest_label}' has {fewest}."
        )
    folds: list[list[int]] = [[] for _ in range(k)]
    per_label: list[Counter[str]] = [Counter() for _ in range(k)]
    for groups in groups_by_class.values():
        for group in sorted(groups, key=len, reverse=True):
            labels = [dataset.samples[index].label for index in group]
            fold = min(range(k), key=lambda f: (sum(per_label[f][label] for label in labels), len(folds[f]), f))
            folds[fold].extend(group)
            per_label[fold].update(labels)
    everyone = set(range(len(dataset.samples)))
    return [Split(sorted(everyone - set(fold)), sorted(fold)) for fold in folds]

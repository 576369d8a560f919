"""Reading a folder-per-class dataset: what is usable, what is not and why, and the split.

Every file under a class folder either becomes a :class:`Sample` or a :class:`Rejection`
with a reason, so nothing is dropped silently. Photos that are the same picture (byte for
byte, or nearly: re-encoded, resized, re-cropped a little) are grouped, and a group always
lands wholly in training or wholly in validation, so validation never grades the model on
a photo it has effectively seen.

Files are checked in worker processes, and every usable photo is decoded into the photo
cache (:mod:`bird_model.cache`) on the way: a :class:`Dataset` names its photos, training
reads their pixels from the cache (:mod:`bird_model.inputs`).
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import random
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bird_model.cache import PhotoCache
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.images import ImageError, load_rgb
from bird_model.near_duplicates import difference_hash, group_near_duplicates
from bird_model.settings import default_cache_dir

class DatasetError(ValueError):
    """The dataset cannot be trained on; the message says what to fix."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    sha256: str
    dhash: int


@dataclass(frozen=True)
class Rejection:
    path: Path
    reason: str


@dataclass
class CheckTimings:
    """How the check went: seconds for reading, hashing and decoding, and for grouping; photos reused from the cache."""

    check_seconds: float = 0.0
    grouping_seconds: float = 0.0
    from_cache: int = 0


@dataclass
class Dataset:
    """Usable samples, their decoded pixels in :attr:`cache` (by ``sha256``), and the rejected files."""

    classes: list[str]
    samples: list[Sample]
    cache: PhotoCache
    rejections: list[Rejection] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)
    """The folders the photos were read from, in ``--data`` order."""
    timings: CheckTimings = field(default_factory=CheckTimings)

    def counts(self) -> dict[str, int]:
        counted = Counter(sample.label for sample in self.samples)
        return {name: counted[name] for name in self.classes}

    def fingerprint(self) -> str:
        """One hash for the whole labelled content, independent of folder locations."""
        lines = sorted(f"{sample.label}\t{sample.sha256}" for sample in self.samples)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def near_duplicate_groups(self) -> list[list[Sample]]:
        return [[self.samples[i] for i in group] for group in self.groups if len(group) > 1]

    def locate(self, path: Path) -> tuple[int, str]:
        """The source a file came from (its index in :attr:`roots`) and its path inside it.

        What a model folder records instead of the absolute path, which would publish the
        trainer's folders and user name with the model.
        """
        return _locate(path, self.roots)


def _locate(path: Path, roots: list[Path]) -> tuple[int, str]:
    for index, root in enumerate(roots):
        if path.is_relative_to(root):
            return index, path.relative_to(root).as_posix()
    raise ValueError(f"{path} is not inside any dataset folder")


@dataclass(frozen=True)
class Split:
    train: list[int]
    validation: list[int]


def load_dataset(
    folders: list[Path],
    image_size: int,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    links_within: tuple[Path, ...] = (),
) -> Dataset:
    """Scan every class folder of every root, check every file in parallel, and check the result.

    Each usable photo is decoded into the photo cache under ``cache_dir`` (default:
    :func:`bird_model.settings.default_cache_dir`) unless a whole entry is there already; the
    dataset holds no pixels, training reads them from the cache. Several roots merge by class
    name, which is how new photos are added for retraining. ``links_within`` names folders that
    links may point into besides the roots (:func:`list_candidates`). Raises :class:`DatasetError` for a
    dataset that cannot make a classifier.
    """
    started = time.monotonic()
    cache = PhotoCache(cache_dir or default_cache_dir(), image_size)
    candidates, rejections = list_candidates(folders, links_within)
    _check_writable(cache.root)
    checked = _check_in_parallel([path for path, _ in candidates], cache, show_progress)
    samples: list[Sample] = []
    first_seen: dict[str, Sample] = {}
    labels_by_hash: dict[str, set[str]] = defaultdict(set)
    for (path, label), result in zip(candidates, checked, strict=True):
        labels_by_hash[result.sha256].add(label)
        if result.sha256 in first_seen:
            original = _locate(first_seen[result.sha256].path, folders)[1]
            rejections.append(Rejection(path, f"byte-identical duplicate of {original}"))
        elif result.dhash is None:
            rejections.append(Rejection(path, result.problem))
        else:
            first_seen[result.sha256] = Sample(path, label, result.sha256, result.dhash)
            samples.append(first_seen[result.sha256])

    conflicting = {digest for digest, labels in labels_by_hash.items() if len(labels) > 1}
    for sample in samples:
        if sample.sha256 in conflicting:
            names = ", ".join(sorted(labels_by_hash[sample.sha256]))
            rejections.append(Rejection(sample.path, f"the same file is filed under several classes ({names})"))
    samples = [sample for sample in samples if sample.sha256 not in conflicting]

    classes = sorted({label for _, label in candidates})
    dataset = Dataset(classes, samples, cache, sorted(rejections, key=lambda r: str(r.path)), roots=list(folders))
    dataset.timings.check_seconds = time.monotonic() - started
    dataset.timings.from_cache = sum(result.from_cache for result in checked)
    _check_trainable(dataset, folders)
    started = time.monotonic()
    dataset.groups = group_near_duplicates([s.label for s in samples], [s.dhash for s in samples])
    dataset.timings.grouping_seconds = time.monotonic() - started
    return dataset


@dataclass(frozen=True)
class _Checked:
    """What checking one file found: its content hash, and its difference hash or why it is unusable."""

    sha256: str
    dhash: int | None
    problem: str = ""
    from_cache: bool = False


_PHOTOS_PER_TASK = 32
"""Files a worker checks per round trip; also the fewest per worker worth starting a process for."""


def _check_in_parallel(paths: list[Path], cache: PhotoCache, show_progress: bool) -> list[_Checked]:
    """:func:`_check_file` for every path, in order, in one worker process per core.

    Workers are spawned, not forked: the caller may have loaded TensorFlow, whose threads a
    fork would copy mid-flight. A spawned worker imports the caller's main script, so a script
    that calls :func:`load_dataset` must guard its entry point (``if __name__ == "__main__":``),
    as ``train.py`` and the benchmarks do. Too few files for two workers are checked here, without the
    second or so a worker takes to start.
    """
    check = functools.partial(_check_file, cache=cache)
    workers = min(_usable_cores(), len(paths) // _PHOTOS_PER_TASK)
    progress = functools.partial(
        tqdm, total=len(paths), desc="Checking photos", unit="photo", disable=not show_progress
    )
    if workers < 2:
        return list(progress(map(check, paths)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(progress(pool.map(check, paths, chunksize=_PHOTOS_PER_TASK)))


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(
            f"The photo cache {folder} cannot be created ({error.strerror}); choose another with --cache-dir."
        ) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetError(f"The photo cache {folder} is not writable; choose another with --cache-dir.")


def _usable_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_file(path: Path, cache: PhotoCache) -> _Checked:
    """Hash a file and make sure the cache holds its decoded pixels; runs in a worker process.

    A cached entry saves the decode; one that is missing or fails its checksum is decoded and
    written again. The difference hash is computed from the decoded pixels, either way.
    """
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    pixels = cache.read(digest)
    if pixels is not None:
        return _Checked(digest, difference_hash(pixels), from_cache=True)
    try:
        pixels = load_rgb(content, cache.image_size)
    except ImageError as error:
        return _Checked(digest, None, str(error))
    cache.write(digest, pixels)
    return _Checked(digest, difference_hash(pixels))


def split_dataset(
    dataset: Dataset, validation_fraction: float, seed: int, keep_in_validation: frozenset[str] = frozenset()
) -> Split:
    """Stratified, reproducible split that keeps each near-duplicate group on one side.

    Each class sends ``round(n * validation_fraction)`` photos (at least one) to
    validation, taking whole groups in a seeded random order, and always keeps at least
    one group for training. Groups holding a photo whose SHA-256 is in
    ``keep_in_validation`` go first: a retrained model is then graded on the photos that
    graded its parent, which it has not trained on.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DatasetError(f"--val-split must be between 0 and 1, got {validation_fraction}.")
    train: list[int] = []
    validation: list[int] = []
    for groups in shuffled_groups_by_class(dataset, seed).values():
        groups.sort(key=lambda group: not any(dataset.samples[i].sha256 in keep_in_validation for i in group))
        size = sum(len(group) for group in groups)
        wanted = max(1, round(size * validation_fraction))
        taken = 0
        for position, group in enumerate(groups):
            is_last = position == len(groups) - 1
            if taken < wanted and not is_last:
                validation.extend(group)
                taken += len(group)
            else:
                train.extend(group)
    return Split(sorted(train), sorted(validation))


def shuffled_groups_by_class(dataset: Dataset, seed: int) -> dict[str, list[list[int]]]:
    """Each class's near-duplicate groups, in class order, each class shuffled by one seeded generator.

    The order is the only randomness of the split (and of the benchmarks' folds,
    ``benchmarks/folds.py``), so a seed reproduces them exactly.
    """
    rng = random.Random(seed)
    groups_by_class: dict[str, list[list[int]]] = defaultdict(list)
    for group in dataset.groups:
        groups_by_class[dataset.samples[group[0]].label].append(sorted(group))
    shuffled: dict[str, list[list[int]]] = {}
    for label in dataset.classes:
        groups = sorted(groups_by_class[label])
        rng.shuffle(groups)
        shuffled[label] = groups
    return shuffled


OUTSIDE = "a link to outside the dataset folder; not read"


def list_candidates(
    folders: list[Path], links_within: tuple[Path, ...] = ()
) -> tuple[list[tuple[Path, str]], list[Rejection]]:
    """Every non-hidden file inside a class folder (at any depth) with its class, or why it is not a candidate.

    Training's dataset check and ``bird_model.evaluate`` read labelled folders through this one scan.
    A dataset may come from a stranger (a Hub or Kaggle download, a shared folder), so a symbolic
    link (a photo or a class folder) whose target leaves the dataset folder is listed with
    :data:`OUTSIDE` and never opened: ``/etc/passwd`` or someone's private photos must neither
    be read nor trained on and published as an example. Links within the folder are followed
    (the scan does not descend into linked sub-folders of a class), and so are links into
    ``links_within``, folders the caller vouches for (a Hub snapshot's files are links into the
    huggingface_hub cache's ``blobs/``, which that library wrote). Raises :class:`DatasetError`
    for a class folder whose name is not fit to be a class name (:func:`_check_class_name`).
    """
    candidates: list[tuple[Path, str]] = []
    rejections: list[Rejection] = []
    for root in folders:
        if not root.is_dir():
            raise DatasetError(f"Dataset folder not found: {root}")
        inside = (root.resolve(), *(folder.resolve() for folder in links_within))
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if _leaves(class_dir, inside):
                rejections.append(Rejection(class_dir, OUTSIDE))
                continue
            _check_class_name(class_dir)
            for path in sorted(class_dir.rglob("*")):
                relative = path.relative_to(class_dir)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if _leaves(path, inside):
                    rejections.append(Rejection(path, OUTSIDE))
                    continue
                if not path.is_file():
                    continue
                if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                    rejections.append(Rejection(path, f"unsupported file type '{path.suffix or path.name}'"))
                else:
                    candidates.append((path, class_dir.name))
        stray = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        rejections.extend(Rejection(p, "not inside a class folder") for p in stray)
    return candidates, rejections


def _leaves(path: Path, inside: tuple[Path, ...]) -> bool:
    """Whether ``path`` is a symbolic link whose target (followed to the end) is under none of ``inside``.

    Only links need resolving: the scan never descends into a linked folder, so a path that is
    not a link itself lies under its root.
    """
    return path.is_symlink() and not any(path.resolve().is_relative_to(folder) for folder in inside)


def _check_class_name(class_dir: Path) -> None:
    """A class name goes into labels.json, the model card's table and every answer on the page:
    a newline or other control character would break them, a path separator would make it a path."""
    name = class_dir.name
    if not name.isprintable() or any(separator in name for separator in ("/", "\\")):
        raise DatasetError(
            f"The class folder {name!r} in {class_dir.parent} has a name with a control character (such as a "
            "newline or tab) or a path separator; rename the folder to the class name people should read."
        )


def _check_trainable(dataset: Dataset, folders: list[Path]) -> None:
    roots = ", ".join(str(folder) for folder in folders)
    if not dataset.classes:
        raise DatasetError(
            f"No class folders found in {roots}. Expected one sub-folder per class, "
            "for example DATA/macaw/photo1.jpg and DATA/gray parrot/photo2.jpg."
        )
    if len(dataset.classes) < 2:
        raise DatasetError(f"Only one class ({dataset.classes[0]}) found in {roots}; a classifier needs at least 2.")
    too_few = {name: count for name, count in dataset.counts().items() if count < 2}
    if too_few:
        listed = ", ".join(f"{name} ({count})" for name, count in too_few.items())
        raise DatasetError(f"Each class needs at least 2 usable photos; these have fewer: {listed}.")

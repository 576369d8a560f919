"""Turning a ``--data`` spec into a folder-per-class dataset on local disk, with its exact version.

A spec is one of:

- ``kaggle:OWNER/DATASET[@VERSION][/SUB/FOLDER]``: a Kaggle dataset, downloaded and cached by
  kagglehub. ``@VERSION`` pins a dataset version; only a pinned version is served from the
  cache without asking Kaggle, so it also works offline.
- ``hf:OWNER/NAME[@REVISION][/SUB/FOLDER]`` (or a full ``hf://datasets/...`` URI): a dataset
  repo on the Hugging Face Hub (``HF_ENDPOINT``), fetched and cached by huggingface_hub. The
  grammar is huggingface_hub's own, so ``refs/pr/N`` works and another revision containing
  ``/`` is written with ``%2F``.
- anything else: a folder on local disk.

Downloads often wrap the classes in an extra folder (the Kaggle dataset
``muhammadadeelkaggle/birds-dataset`` keeps them under ``Birds dataset/``), so the class root
is discovered rather than assumed, and ``/SUB/FOLDER`` picks one when several qualify. Each
source records its provenance (Hub commit sha, Kaggle version number, local folder name) so a
trained model can say exactly which data it saw. Every failure a user can fix is a
:class:`DataSourceError` whose one-line message says what to do.
"""

from __future__ import annotations

import shlex
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants as hf_constants

from bird_model import hub, kaggle
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.logfolder import ACCEPTED_DIR, PENDING_DIR, is_feedback_folder

KAGGLE_PREFIX = "kaggle:"
HF_PREFIX = "hf:"
HF_FORM = "hf:OWNER/NAME[@REVISION][/SUBFOLDER]"
SPEC_FORMS = f"a local folder, {kaggle.KAGGLE_FORM} or {HF_FORM}"

MIN_CLASSES = 2
"""A classifier needs at least two classes, so a class root has at least two class folders."""

class DataSourceError(Exception):
    """A ``--data`` spec that cannot become a dataset; the message is one line that says what to do."""


@dataclass(frozen=True)
class ResolvedSource:
    """A folder-per-class dataset on local disk and where exactly it came from.

    ``provenance`` holds strings only, so it can go into model metadata as is. Every source
    has ``type`` and ``subfolder`` (the class root relative to the source's top folder,
    ``.`` for the top folder itself); ``kaggle`` adds ``handle`` and ``version``, ``hf`` adds
    ``repo_id``, ``revision`` and ``commit``, ``local`` adds the folder's ``name`` (never its
    absolute path: the metadata is published).
    """

    spec: str
    path: Path
    provenance: dict[str, str]
    links_within: Path | None = None
    """A folder the source's own symbolic links may point into besides ``path``: a Hub snapshot's
    files are links into its repo's ``blobs/`` folder of the huggingface_hub cache."""

    def record(self) -> dict[str, str]:
        """What model metadata says of this source: a local folder by name, as typed paths can be absolute."""
        spec = self.provenance["name"] if self.provenance["type"] == "local" else self.spec
        return {"spec": spec, **self.provenance}


@dataclass(frozen=True)
class _HubTarget:
    repo_id: str
    revision: str | None
    subfolder: str

    @property
    def url(self) -> str:
        return f"{hf_constants.ENDPOINT}/datasets/{self.repo_id}"


def resolve_source(spec: str) -> ResolvedSource:
    """Turn a ``--data`` spec into the local class root, downloading (or reusing a cached copy) if needed."""
    if not spec.strip():
        raise DataSourceError(f"--data is empty; give {SPEC_FORMS}.")
    if spec.startswith(KAGGLE_PREFIX):
        return _resolve_kaggle(spec)
    if spec.startswith(HF_PREFIX):
        return _resolve_hf(spec)
    return _resolve_local(spec)


def find_class_root(folder: Path, spec: str) -> Path:
    """Find the one folder under ``folder`` that is laid out folder-per-class.

    A class root has at least :data:`MIN_CLASSES` visible sub-folders that each directly hold
    an image. The walk is breadth-first and does not descend into a class root, so class
    folders that happen to contain image sub-folders of their own are not mistaken for
    datasets. Hidden files and folders (``.git``, ``.cache``, macOS ``._*`` files) are
    ignored. ``spec`` is only used to word the errors, so that their hints can be pasted back
    as ``--data``.
    """
    if not folder.is_dir():
        raise DataSourceError(f"{spec!r}: {folder} is not a folder; expected one sub-folder per class of images.")
    class_roots, loose_image_folders = _scan(folder)
    if len(class_roots) == 1:
        return class_roots[0]
    if class_roots:
        raise _ambiguous(spec, [_relative(root, folder) for root in class_roots])
    if loose_image_folders:
        where = _describe_folder(_relative(loose_image_folders[0], folder))
        raise DataSourceError(
            f"{spec!r} is not laid out folder-per-class: images sit directly in {where} and no folder has "
            f"{MIN_CLASSES} or more sub-folders of images; expected ROOT/CLASS/IMAGE, one sub-folder per class "
            f"(e.g. ROOT/sparrow/1.jpg, ROOT/robin/2.jpg)."
        )
    raise DataSourceError(
        f"{spec!r} holds no images ({', '.join(sorted(SUPPORTED_EXTENSIONS))}; hidden files are ignored); "
        f"expected ROOT/CLASS/IMAGE, one sub-folder per class."
    )


# Local folders


def _resolve_local(spec: str) -> ResolvedSource:
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataSourceError(f"--data {spec!r} {problem}; give {SPEC_FORMS}.")
    top = folder.resolve()
    if is_feedback_folder(top):
        class_root = _accepted_reports(top, spec)
    else:
        class_root = top if _holds_classes(top) else find_class_root(top, spec)
    # The folder's name only: the absolute path would publish the trainer's folders and user name.
    provenance = {"type": "local", "name": top.name, "subfolder": _relative(class_root, top)}
    return ResolvedSource(spec, class_root, provenance)


def _accepted_reports(feedback: Path, spec: str) -> Path:
    """A feedback folder (:mod:`bird_model.logfolder`) trains on the operator's accepted reports only.

    Pending reports are a stranger's word until reviewed, so they are counted, not read; with
    nothing accepted there is nothing to train on, and the run stops before reading anything.
    """
    pending = _count_images(feedback / PENDING_DIR)
    accepted = feedback / ACCEPTED_DIR
    review = "python -m bird_model.feedback list (in the app's log folder)"
    if pending:
        print(f"{pending} feedback reports are pending review and not used: {review}")
    if not _count_images(accepted):
        waiting = f"{pending} pending: review them with {review}, then accept" if pending else "and none pending"
        raise DataSourceError(
            f"--data {spec!r} is a feedback folder with no accepted report, so there is nothing to train on until "
            f"some are accepted ({waiting})."
        )
    return accepted


def _count_images(tree: Path) -> int:
    """Photos in ``tree``'s class folders (``CLASS/IMAGE``)."""
    return sum(1 for class_dir in _visible_subfolders(tree) for entry in class_dir.iterdir() if _is_image(entry))


# Kaggle


def _resolve_kaggle(spec: str) -> ResolvedSource:
    """Kaggle's grammar, download and refusals are :mod:`bird_model.kaggle`'s; its errors become ours."""
    try:
        target = kaggle.parse_spec(spec[len(KAGGLE_PREFIX) :], spec)
        _checked_subfolder(target.subfolder, spec)  # before any download
        download, version = kaggle.download(target)
    except kaggle.KaggleError as error:
        raise DataSourceError(str(error)) from error
    class_root = find_class_root(_enter_subfolder(download, target.subfolder, spec), spec)
    provenance = {
        "type": "kaggle",
        "handle": f"{target.owner}/{target.dataset}",
        "version": version,
        "subfolder": _relative(class_root, download),
    }
    return ResolvedSource(spec, class_root, provenance)


# Hugging Face Hub


def _resolve_hf(spec: str) -> ResolvedSource:
    target = _parse_hf(spec)
    download = _download_hf(target)
    named = _enter_subfolder(download, target.subfolder, spec)
    # The feedback folder of a mirrored prediction log (hf:OWNER/LOG/feedback) trains on its accepted
    # reports; any other sub-folder named in the spec counts as pointed at directly, like a local
    # folder, so it may hold a single class.
    if is_feedback_folder(named):
        class_root = _accepted_reports(named, spec)
    else:
        class_root = named if target.subfolder and _holds_classes(named) else find_class_root(named, spec)
    provenance = {
        "type": "hf",
        "repo_id": target.repo_id,
        "revision": target.revision or hf_constants.DEFAULT_REVISION,
        # snapshot_download returns <cache>/snapshots/<commit sha>, never a branch or tag name, and it
        # does so offline from the cache too, where asking HfApi().dataset_info for the sha would fail.
        "commit": download.name,
        "subfolder": _relative(class_root, download),
    }
    # <cache>/datasets--OWNER--NAME/snapshots/<sha>: the snapshot's files link to that repo's blobs/.
    return ResolvedSource(spec, class_root, provenance, links_within=download.parent.parent)


def _parse_hf(spec: str) -> _HubTarget:
    """Parse with huggingface_hub's own URI grammar, so revisions and repo ids are validated its way."""
    rest = spec[len(HF_PREFIX) :]
    uri_text = f"{HF_PREFIX}{rest}" if rest.startswith("//") else f"hf://datasets/{rest}"
    try:
        repo_type, repo_id, revision, path_in_repo = hub.parse_dataset_uri(uri_text)
    except ValueError as error:
        raise DataSourceError(f"{spec!r} is not a valid Hub spec ({error}); expected {HF_FORM}.") from error
    if repo_type != "dataset":
        raise DataSourceError(f"{spec!r} names a {repo_type} repo; --data takes a dataset repo: {HF_FORM}.")
    return _HubTarget(repo_id, revision, _checked_subfolder(path_in_repo, spec))


def _download_hf(target: _HubTarget) -> Path:
    """Fetch (or reuse the cached snapshot of) a Hub dataset repo; :mod:`bird_model.hub` words its failures."""
    try:
        return hub.download_dataset(target.repo_id, target.revision, target.url)
    except hub.HubError as error:
        raise DataSourceError(str(error)) from error


# Shared helpers


def _checked_subfolder(subfolder: str, spec: str) -> str:
    """Refuse sub-folder paths that could leave the download or that mean nothing (``a//b``, ``./a``)."""
    if subfolder and any(part in ("", ".", "..") for part in subfolder.split("/")):
        raise DataSourceError(
            f"{spec!r}: the sub-folder {subfolder!r} must be a plain relative path such as 'Birds dataset' "
            f"(no empty, '.' or '..' parts)."
        )
    return subfolder


def _enter_subfolder(download: Path, subfolder: str, spec: str) -> Path:
    if not subfolder:
        return download
    folder = download / subfolder
    if not folder.is_dir():
        present = ", ".join(repr(path.name) for path in _visible_subfolders(download)) or "none"
        raise DataSourceError(
            f"{spec!r}: the download has no folder {subfolder!r}; its top-level folders are: {present}."
        )
    return folder


def _scan(top: Path) -> tuple[list[Path], list[Path]]:
    """Walk breadth-first; return the class roots (not descended into) and the folders with loose images."""
    class_roots: list[Path] = []
    loose_image_folders: list[Path] = []
    seen: set[Path] = set()
    queue = deque([top])
    while queue:
        folder = queue.popleft()
        if folder.resolve() in seen:  # a symlinked folder loop
            continue
        seen.add(folder.resolve())
        if is_feedback_folder(folder):  # only what the operator accepted is ever a dataset
            queue.extend(path for path in [folder / ACCEPTED_DIR] if path.is_dir())
            continue
        if _holds_images(folder):
            loose_image_folders.append(folder)
        subfolders = _visible_subfolders(folder)
        if sum(1 for sub in subfolders if _holds_images(sub)) >= MIN_CLASSES:
            class_roots.append(folder)
        else:
            queue.extend(subfolders)
    return class_roots, loose_image_folders


def _holds_classes(folder: Path) -> bool:
    """For a folder the user points at directly, which may hold a single class: new photos for
    retraining often do, and the merged dataset is checked for two classes later."""
    return any(_holds_images(sub) for sub in _visible_subfolders(folder)) and not _holds_images(folder)


def _visible_subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith(".") and entry.is_dir())


def _holds_images(folder: Path) -> bool:
    return any(_is_image(entry) for entry in folder.iterdir())


def _is_image(entry: Path) -> bool:
    return not entry.name.startswith(".") and entry.suffix.lower() in SUPPORTED_EXTENSIONS and entry.is_file()


def _ambiguous(spec: str, candidates: list[str]) -> DataSourceError:
    listed = ", ".join(repr(candidate) for candidate in candidates)
    example = shlex.quote(f"{spec.rstrip('/')}/{candidates[0]}")
    return DataSourceError(
        f"{spec!r} holds several folder-per-class datasets: {listed}; pick one by appending its path to the "
        f"spec, e.g. --data {example}."
    )


def _relative(path: Path, top: Path) -> str:
    return path.relative_to(top).as_posix()


def _describe_folder(relative: str) -> str:
    return "the top folder" if relative == "." else repr(relative)

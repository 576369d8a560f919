"""The release policy: which published model a new one replaces, how they compare, where it goes.

A retraining is graded against its **parent**, the model ``main`` serves now, on the photos
that validated the parent (:func:`compare_with_parent`). A new model worse than its parent
does not move ``main``: without ``--force`` it goes on a branch ``candidate-TAG`` and only its
tag points at it (:func:`target_branch`), so the live demo keeps the better model.

:func:`publish` runs the steps in order: check the folder, record the repo and parent in
``config.json`` and the card (a visible step, before anything is uploaded), then upload the
folder exactly as it is on disk (:func:`bird_model.hub.upload_model_folder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bird_model import artifacts, hub
from bird_model.card import render_model_card
from bird_model.evaluation import Metrics, ParentComparison

if TYPE_CHECKING:
    from bird_model.data import Dataset, Split

MAIN = "main"


@dataclass(frozen=True)
class Parent:
    """The published model a retraining replaces, and the photos that validated it."""

    repo_id: str
    commit: str
    accuracy: float
    validation_hashes: frozenset[str]

    def record(self) -> dict[str, Any]:
        """What the new model's config and card say about it."""
        return {"repo_id": self.repo_id, "commit": self.commit, "accuracy": self.accuracy}


def find_parent(repo_id: str, token: str | None = None) -> Parent | None:
    """The model ``main`` serves now, which a new upload would replace; None for a new or empty repo."""
    published = hub.published_files(repo_id, MAIN, token=token)
    if published is None or artifacts.METRICS_FILE not in published.files:
        return None
    metrics = hub.read_published_file(repo_id, artifacts.METRICS_FILE, published.commit, token=token)
    split = (
        hub.read_published_file(repo_id, artifacts.SPLIT_FILE, published.commit, token=token)
        if artifacts.SPLIT_FILE in published.files
        else {}
    )
    hashes = frozenset(row["sha256"] for row in split.get("validation", []))
    return Parent(repo_id, published.commit, float(metrics["validation"]["accuracy"]), hashes)


def compare_with_parent(
    parent: Parent, dataset: Dataset, split: Split, validation_probabilities: np.ndarray
) -> ParentComparison:
    """Accuracy of the new model on the parent's validation photos that are in this run's validation."""
    shared = [
        position
        for position, index in enumerate(split.validation)
        if dataset.samples[index].sha256 in parent.validation_hashes
    ]
    truth = np.array([dataset.classes.index(dataset.samples[split.validation[p]].label) for p in shared])
    right = validation_probabilities[shared].argmax(axis=1) == truth if shared else np.array([])
    return ParentComparison(
        parent_commit=parent.commit,
        photos=len(shared),
        parent_photos=len(parent.validation_hashes),
        parent_accuracy=parent.accuracy,
        new_accuracy=float(right.mean()) if shared else parent.accuracy,
    )


def print_comparison(comparison: ParentComparison) -> None:
    change = comparison.new_accuracy - comparison.parent_accuracy
    print(
        f"On {comparison.photos} of the {comparison.parent_photos} photos that validated the published model "
        f"({comparison.parent_commit[:7]}): {comparison.new_accuracy:.2%} vs its {comparison.parent_accuracy:.2%} "
        f"({change:+.2%})."
    )


def target_branch(metrics: Metrics, tag: str | None, force: bool) -> str:
    """``main``, or ``candidate-TAG`` for a model worse than its parent; raises ``HubError`` without a tag."""
    worse = metrics.parent_comparison is not None and metrics.parent_comparison.is_worse
    if not worse or force:
        return MAIN
    if not tag:
        raise hub.HubError(
            "the new model is worse than the one on main (see metrics.json 'parent_comparison'); "
            "publish it under a tag only with --tag NAME, or replace main anyway with --force."
        )
    return f"candidate-{tag}"


def record_release(folder: artifacts.ModelFolder, repo_id: str, parent: dict[str, Any] | None) -> bool:
    """Write the target repo and the parent into ``config.json`` and the card; True if anything changed."""
    config = {**folder.config, "repo_id": repo_id, "parent": parent}
    card = render_model_card(config, folder.metrics, repo_id=repo_id)
    card_path = folder.path / artifacts.CARD_FILE
    if config == folder.config and card_path.is_file() and card_path.read_bytes() == str(card).encode():
        return False
    artifacts.write_json(folder.path / artifacts.CONFIG_FILE, config)
    card.save(card_path)
    return True


def publish(
    path: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    tag: str | None = None,
    commit_message: str | None = None,
    force: bool = False,
) -> hub.Published:
    """Check, record, upload: a complete model folder goes up as one commit, optionally tagged.

    The repo is created first (a refused token fails there, before the folder is touched);
    then the repo id and parent are recorded in the folder, and the folder is uploaded as it
    is on disk. A retry after a failed upload uploads the same recorded folder.
    """
    if not hub.is_repo_id(repo_id):
        raise hub.HubError(f"--push-to-hub {repo_id!r} is not a repo id; expected OWNER/NAME.")
    folder = artifacts.read_model_folder(path)
    if not folder.model_path.is_file():
        raise artifacts.ModelFolderError(f"Model folder {path} is incomplete: missing {artifacts.MODEL_FILE}.")
    hub.require_token(token, f"publishing to {repo_id}")
    branch = target_branch(folder.metrics, tag, force)
    hub.create_model_repo(repo_id, private=private, token=token)
    parent = folder.config.get("parent") or _record_of(find_parent(repo_id, token=token))
    if record_release(folder, repo_id, parent):
        print(f"Recorded the repo {repo_id} and the parent "
              f"{parent['commit'][:7] if parent else '(none)'} in {artifacts.CONFIG_FILE} and {artifacts.CARD_FILE}")
    accuracy = folder.metrics.validation.accuracy
    return hub.upload_model_folder(
        path,
        repo_id,
        token=token,
        branch=branch,
        branch_from=parent["commit"] if branch != MAIN and parent else None,
        tag=tag,
        commit_message=commit_message or f"Model {folder.config['created_at']}: validation accuracy {accuracy:.2%}",
        tag_message=commit_message,
    )


def _record_of(parent: Parent | None) -> dict[str, Any] | None:
    return None if parent is None else parent.record()

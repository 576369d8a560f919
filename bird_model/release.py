"""The release policy: which published model a new one replaces, how they compare, where it goes.

A retraining is graded against its **parent**, the model ``main`` serves now, on the photos
that validated the parent (:func:`compare_with_parent`), overall and per class. A new model
worse than its parent overall, or one that loses more than :data:`MAX_CLASS_DROP` on any class
(:func:`regressed_classes`), does not move ``main``: without ``--force`` it goes on a branch
``candidate-TAG`` and only its tag points at it (:func:`target_branch`), so the live demo keeps the better model.

:func:`publish` runs the steps in order: check the folder, record the repo and parent in
the run config and the card (a visible step, before anything is uploaded), then upload the
folder exactly as it is on disk (:func:`bird_model.hub.upload_model_folder`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bird_model import artifacts, hub
from bird_model.card import render_model_card
from bird_model.evaluation import ClassComparison, Metrics, ParentComparison

if TYPE_CHECKING:
    from bird_model.data import Dataset, Split

MAIN = "main"
MAX_CLASS_DROP = 0.25
"""A new model that loses more than 25 points of accuracy on any one class, on the photos that
validated its parent, does not replace it, whatever the overall figure.

Overall accuracy hides a class sacrificed to the others: visitors' reports, once accepted,
can teach one class's photos as another (issue #20's replay: 200 "gray parrot" reports on
macaw photos turned 44 of 50 macaws, 88 points, into gray parrots). A class is judged on few
photos (10 per class on the reference parrots), where one photo is 10 points and a retraining
on the same data moves a class by one or two photos; 25 points is three such photos at 10 per
class, above that noise and far below a flood's effect."""


@dataclass(frozen=True)
class Parent:
    """The published model a retraining replaces, and the photos that validated it."""

    repo_id: str
    commit: str
    accuracy: float
    validation_hashes: frozenset[str]
    class_accuracy: dict[str, float] = field(default_factory=dict)
    """Per class, the parent's validation accuracy (its ``metrics.json`` recall); empty for a
    parent published before per-class scores."""

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
    per_class = {name: float(scores["recall"]) for name, scores in metrics["validation"].get("per_class", {}).items()}
    return Parent(repo_id, published.commit, float(metrics["validation"]["accuracy"]), hashes, per_class)


def compare_with_parent(
    parent: Parent, dataset: Dataset, split: Split, validation_probabilities: np.ndarray
) -> ParentComparison:
    """Accuracy of the new model on the parent's validation photos that are in this run's validation,
    overall and per class (each class against the parent's own accuracy on it)."""
    shared = [
        position
        for position, index in enumerate(split.validation)
        if dataset.samples[index].sha256 in parent.validation_hashes
    ]
    truth = np.array([dataset.classes.index(dataset.samples[split.validation[p]].label) for p in shared], dtype=int)
    right = validation_probabilities[shared].argmax(axis=1) == truth if shared else np.array([], dtype=bool)
    per_class = {
        name: ClassComparison(int(mine.sum()), parent.class_accuracy[name], float(right[mine].mean()))
        for label, name in enumerate(dataset.classes)
        if name in parent.class_accuracy and (mine := truth == label).any()
    }
    return ParentComparison(
        parent_commit=parent.commit,
        photos=len(shared),
        parent_photos=len(parent.validation_hashes),
        parent_accuracy=parent.accuracy,
        new_accuracy=float(right.mean()) if shared else parent.accuracy,
        per_class=per_class,
    )


def regressed_classes(comparison: ParentComparison) -> list[str]:
    """The classes on which the new model loses more than :data:`MAX_CLASS_DROP`, the worst first."""
    lost = [(scores.change, name) for name, scores in comparison.per_class.items() if scores.change < -MAX_CLASS_DROP]
    return [name for _, name in sorted(lost)]


def refusal(comparison: ParentComparison | None) -> str | None:
    """Why the new model may not replace its parent on ``main``, in one line; None when it may."""
    if comparison is None:
        return None
    reasons = []
    if regressed := regressed_classes(comparison):
        classes = ", ".join(
            f"{name} {comparison.per_class[name].parent_accuracy:.0%} -> {comparison.per_class[name].new_accuracy:.0%}"
            for name in regressed
        )
        reasons.append(f"it loses more than {MAX_CLASS_DROP * 100:.0f} points on {classes}")
    if comparison.is_worse:
        reasons.append(f"overall {comparison.new_accuracy:.2%} vs its {comparison.parent_accuracy:.2%}")
    if not reasons:
        return None
    return (f"the new model is worse than the one on main on the {comparison.photos} photos that validated it: "
            f"{'; '.join(reasons)}")


def print_comparison(comparison: ParentComparison) -> None:
    change = comparison.new_accuracy - comparison.parent_accuracy
    print(
        f"On {comparison.photos} of the {comparison.parent_photos} photos that validated the published model "
        f"({comparison.parent_commit[:7]}): {comparison.new_accuracy:.2%} vs its {comparison.parent_accuracy:.2%} "
        f"({change:+.2%})."
    )
    if comparison.per_class:
        name, worst = min(comparison.per_class.items(), key=lambda item: item[1].change)
        print(f"Per class, the largest change is {name}: {worst.new_accuracy:.2%} vs its {worst.parent_accuracy:.2%} "
              f"on {worst.photos} photos ({worst.change * 100:+.1f} points; main is refused beyond "
              f"-{MAX_CLASS_DROP * 100:.0f} on any class).")
    if (reason := refusal(comparison)) is not None:
        print(f"Warning: {reason}.")


def target_branch(metrics: Metrics, tag: str | None, force: bool) -> str:
    """``main``, or ``candidate-TAG`` for a model its parent beats (:func:`refusal`); ``HubError`` without a tag."""
    reason = refusal(metrics.parent_comparison)
    if reason is None or force:
        return MAIN
    if not tag:
        raise hub.HubError(
            f"{reason} (see metrics.json 'parent_comparison'); "
            "publish it under a tag only with --tag NAME, or replace main anyway with --force."
        )
    return f"candidate-{tag}"


def record_release(folder: artifacts.ModelFolder, repo_id: str, parent: dict[str, Any] | None) -> bool:
    """Write the target repo and the parent into the run config and the card; True if anything changed."""
    config = {**folder.config, "repo_id": repo_id, "parent": parent}
    card = render_model_card(config, folder.metrics, repo_id=repo_id)
    card_path = folder.path / artifacts.CARD_FILE
    if config == folder.config and card_path.is_file() and card_path.read_bytes() == str(card).encode():
        return False
    artifacts.write_json(folder.path / folder.config_file, config)
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
    if not folder.has_keras_model:
        missing = ", ".join(artifacts.keras_model_files(folder.config_file))
        raise artifacts.ModelFolderError(f"Model folder {path} is incomplete: the Keras model ({missing}) is missing.")
    hub.require_token(token, f"publishing to {repo_id}")
    branch = target_branch(folder.metrics, tag, force)
    if folder.config_file == artifacts.LEGACY_CONFIG_FILE:
        folder = to_keras_layout(folder)
    hub.create_model_repo(repo_id, private=private, token=token)
    parent = folder.config.get("parent") or _record_of(find_parent(repo_id, token=token))
    if record_release(folder, repo_id, parent):
        print(f"Recorded the repo {repo_id} and the parent "
              f"{parent['commit'][:7] if parent else '(none)'} in {folder.config_file} and {artifacts.CARD_FILE}")
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


def to_keras_layout(folder: artifacts.ModelFolder) -> artifacts.ModelFolder:
    """Rewrite a legacy folder (``model.keras``, run config in ``config.json``) in today's layout.

    Published as it was, its repo's ``config.json`` would be the run config, and the Hub's own
    ``keras.saving.load_model("hf://...")`` snippet would fail on it; every published repo must load
    with it. The Keras files are written beside the folder first and moved in only once complete,
    after the run config has its new name, so a failure leaves the legacy folder as it was.
    """
    import shutil

    from bird_model.console import step
    from bird_model.model import load_keras_model, save_keras_model

    with step(f"Rewriting {folder.path} in Keras' layout ({', '.join(artifacts.KERAS_FILES)}, "
              f"{artifacts.RUN_CONFIG_FILE}) so that keras.saving.load_model('hf://...') loads it"):
        staging = artifacts.staging_folder(folder.path)
        try:
            save_keras_model(load_keras_model(folder.model_path), staging)
            artifacts.write_json(folder.path / artifacts.RUN_CONFIG_FILE, folder.config)
            for name in artifacts.KERAS_FILES:
                (staging / name).replace(folder.path / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        folder.model_path.unlink()
    return artifacts.read_model_folder(folder.path)


def _record_of(parent: Parent | None) -> dict[str, Any] | None:
    return None if parent is None else parent.record()

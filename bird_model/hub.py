"""Publishing a model folder to the Hugging Face Hub, and fetching one to serve.

A folder goes up as one commit, so the model, its label map and its card can never be out
of step on the Hub; a server fetches exactly one revision of it and knows which commit it
got. Failures become :class:`HubError` with one line a person can act on; the client's own
exception types stay inside this module. Tokens are passed to ``huggingface_hub`` and
never formatted into any message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, get_token, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from bird_model import artifacts
from bird_model.card import render_model_card

NO_TOKEN = "no Hugging Face token found; set HF_TOKEN, pass --token, or run `hf auth login`."
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubError(RuntimeError):
    """A Hub operation that failed for a reason the user can fix; the message says which."""


@dataclass(frozen=True)
class Published:
    repo_id: str
    commit: str
    commit_url: str
    tag: str | None
    branch: str


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


@dataclass(frozen=True)
class FetchedModel:
    """A model folder on local disk and where it came from (``repo_id``/``commit`` None for a local folder)."""

    folder: artifacts.ModelFolder
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def version(self) -> str:
        """The model's name and version as the public page and API show it: never a local path."""
        if self.repo_id is None:
            config = self.folder.config
            return f"{config.get('model_name', 'model')} (local, trained {str(config.get('created_at', '?'))[:10]})"
        return f"{self.repo_id}@{self.commit[:7] if self.commit else self.revision}"

    def origin(self) -> str:
        """Where it was read from, for the operator's console."""
        return f"local folder {self.folder.path}" if self.repo_id is None else self.version()


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text))


def publish_folder(
    path: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    tag: str | None = None,
    commit_message: str | None = None,
    force: bool = False,
) -> Published:
    """Upload a complete model folder as one commit and optionally tag it.

    The commit goes on ``main``, unless training found the new model worse than ``main``'s
    on the photos that validated it: then, without ``force``, it goes on a branch
    ``candidate-TAG`` and only its tag points at it, so the live demo keeps the better model.
    The folder's card and config are brought up to date with the target repo and the
    revision this upload replaces (its parent) before the upload.
    """
    if not is_repo_id(repo_id):
        raise HubError(f"--push-to-hub {repo_id!r} is not a repo id; expected OWNER/NAME.")
    folder = artifacts.read_model_folder(path)
    if not folder.model_path.is_file():
        raise artifacts.ModelFolderError(f"Model folder {path} is incomplete: missing {artifacts.MODEL_FILE}.")
    if not (token or get_token()):
        raise HubError(f"publishing to {repo_id} failed: {NO_TOKEN}")
    keep_main = is_worse_than_parent(folder.metrics) and not force
    if keep_main and not tag:
        raise HubError(
            "the new model is worse than the one on main (see metrics.json 'parent_comparison'); "
            "publish it under a tag only with --tag NAME, or replace main anyway with --force."
        )
    api = HfApi(token=token)
    with explained(f"publishing to {repo_id}"):
        api.create_repo(repo_id, private=private, exist_ok=True)
        parent = folder.config.get("parent") or _record_of(find_parent(repo_id, token=token))
        _record_parent(folder, repo_id, parent)
        branch = f"candidate-{tag}" if keep_main else "main"
        if keep_main:
            api.create_branch(repo_id, branch=branch, revision=parent["commit"], exist_ok=True)
        accuracy = folder.metrics["validation"]["accuracy"]
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            revision=branch,
            commit_message=commit_message or f"Model {folder.config['created_at']}: validation accuracy {accuracy:.2%}",
            ignore_patterns=[".*", "**/.*"],
            delete_patterns=["*"],
        )
        if tag:
            api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=commit_message)
    return Published(repo_id, commit.oid, commit.commit_url, tag, branch)


def find_parent(repo_id: str, token: str | None = None) -> Parent | None:
    """The model ``main`` serves now, which a new upload would replace; None for a new or empty repo."""
    api = HfApi(token=token)
    with explained(f"reading the current model of {repo_id}"):
        try:
            info = api.model_info(repo_id, revision="main")
        except RepositoryNotFoundError:
            return None
        files = {sibling.rfilename for sibling in info.siblings or []}
        if artifacts.METRICS_FILE not in files:
            return None
        metrics = read_published_file(repo_id, artifacts.METRICS_FILE, info.sha, token=token)
        split = read_published_file(repo_id, artifacts.SPLIT_FILE, info.sha, token=token) if artifacts.SPLIT_FILE in files else {}
    hashes = frozenset(row["sha256"] for row in split.get("validation", []))
    return Parent(repo_id, info.sha, float(metrics["validation"]["accuracy"]), hashes)


def is_worse_than_parent(metrics: dict[str, Any]) -> bool:
    comparison = metrics.get("parent_comparison")
    return bool(comparison) and comparison["new_accuracy"] < comparison["parent_accuracy"]


def fetch_model(source: str, revision: str | None = None, token: str | None = None) -> FetchedModel:
    """A local model folder as is, or one revision of a Hub repo (downloaded once, then cached).

    Only the files the app needs are downloaded. With ``HF_HUB_OFFLINE=1`` the cached copy is
    used without any network access.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        return FetchedModel(artifacts.read_model_folder(local))
    if not is_repo_id(source):
        raise HubError(f"Model folder not found: {source} (nor is it a Hub repo id OWNER/NAME).")
    wanted = revision or "main"
    with explained(f"downloading {source} at revision {wanted!r}"):
        snapshot = Path(
            snapshot_download(source, revision=wanted, allow_patterns=artifacts.SERVING_PATTERNS, token=token)
        )
        if not (snapshot / artifacts.LITERT_FILE).is_file():
            # snapshot_download lays revisions out as .../snapshots/<commit sha>: same commit, one more file.
            snapshot_download(source, revision=snapshot.name, allow_patterns=[artifacts.MODEL_FILE], token=token)
    try:
        folder = artifacts.read_model_folder(snapshot)
    except artifacts.ModelFolderError as error:
        raise HubError(f"{source} at {wanted!r} is not a usable model folder: {error}") from error
    return FetchedModel(folder, repo_id=source, revision=wanted, commit=snapshot.name)


def read_published_file(repo_id: str, filename: str, revision: str, token: str | None = None) -> dict[str, Any]:
    """One JSON file of a published revision (for comparing a new model with its parent)."""
    with explained(f"reading {filename} of {repo_id}@{revision}"):
        return json.loads(Path(hf_hub_download(repo_id, filename, revision=revision, token=token)).read_text())


def _record_of(parent: Parent | None) -> dict[str, Any] | None:
    return None if parent is None else parent.record()


def _record_parent(folder: artifacts.ModelFolder, repo_id: str, parent: dict[str, Any] | None) -> None:
    config = {**folder.config, "repo_id": repo_id, "parent": parent}
    artifacts.write_json(folder.path / artifacts.CONFIG_FILE, config)
    render_model_card(config, folder.metrics, repo_id=repo_id).save(folder.path / artifacts.CARD_FILE)


@contextmanager
def explained(action: str) -> Iterator[None]:
    """Turn the client's exceptions into one-line :class:`HubError`s that say what to do."""
    try:
        yield
    except Exception as error:
        reason = _reason(error)
        if reason is None:
            raise
        raise HubError(f"{action} failed: {reason}") from error


def _reason(error: BaseException) -> str | None:
    if isinstance(error, RevisionNotFoundError):
        return "that revision (branch, tag or commit) does not exist."
    if isinstance(error, RepositoryNotFoundError):
        return "the repo does not exist, or it is private and no valid token was given (set HF_TOKEN)."
    if isinstance(error, EntryNotFoundError) and not isinstance(error, LocalEntryNotFoundError):
        return "a file the model needs is missing from that revision."
    if isinstance(error, LocalTokenNotFoundError):
        return NO_TOKEN
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return "the token was refused (401); check HF_TOKEN or --token."
        if status == 403:
            return "the token may not write to this repo (403); use a token with write access."
        return f"the Hub answered HTTP {status} (after retries); try again later."
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        # Downloads hide the real failure (a 5xx, a refused token) behind "not in the cache".
        underlying = _reason(error.__cause__) if error.__cause__ is not None else None
        return underlying or (
            "the Hub cannot be reached and nothing is cached for it; check the network (or unset HF_HUB_OFFLINE)."
        )
    if isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return f"the Hub cannot be reached ({type(error).__name__}); check the network."
    return None

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


@dataclass(frozen=True)
class FetchedModel:
    """A model folder on local disk and where it came from (``repo_id``/``commit`` None for a local folder)."""

    folder: artifacts.ModelFolder
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def version(self) -> str:
        if self.repo_id is None:
            return f"local folder {self.folder.path}"
        return f"{self.repo_id}@{self.commit[:7] if self.commit else self.revision}"


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
) -> Published:
    """Upload a complete model folder as one commit on ``main`` and optionally tag it.

    The folder is checked first, and its card and config are brought up to date with the
    target repo and the revision this upload replaces (its parent), so the card on the Hub
    tells which model it retrains.
    """
    if not is_repo_id(repo_id):
        raise HubError(f"--push-to-hub {repo_id!r} is not a repo id; expected OWNER/NAME.")
    folder = artifacts.read_model_folder(path)
    if not (token or get_token()):
        raise HubError(f"publishing to {repo_id} failed: {NO_TOKEN}")
    api = HfApi(token=token)
    with _explained(f"publishing to {repo_id}"):
        api.create_repo(repo_id, private=private, exist_ok=True)
        parent = _current_main(api, repo_id)
        _record_parent(folder, repo_id, parent)
        accuracy = folder.metrics["validation"]["accuracy"]
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            commit_message=commit_message or f"Model {folder.config['created_at']}: validation accuracy {accuracy:.2%}",
            ignore_patterns=[".*", "**/.*"],
            delete_patterns=["*"],
        )
        if tag:
            api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=commit_message)
    return Published(repo_id, commit.oid, commit.commit_url, tag)


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
    with _explained(f"downloading {source} at revision {wanted!r}"):
        snapshot = Path(
            snapshot_download(source, revision=wanted, allow_patterns=artifacts.SERVING_PATTERNS, token=token)
        )
    try:
        folder = artifacts.read_model_folder(snapshot)
    except artifacts.ModelFolderError as error:
        raise HubError(f"{source} at {wanted!r} is not a usable model folder: {error}") from error
    # snapshot_download lays revisions out as .../snapshots/<commit sha>.
    return FetchedModel(folder, repo_id=source, revision=wanted, commit=snapshot.name)


def read_published_file(repo_id: str, filename: str, revision: str, token: str | None = None) -> dict[str, Any]:
    """One JSON file of a published revision (for comparing a new model with its parent)."""
    with _explained(f"reading {filename} of {repo_id}@{revision}"):
        return json.loads(Path(hf_hub_download(repo_id, filename, revision=revision, token=token)).read_text())


def _current_main(api: HfApi, repo_id: str) -> dict[str, Any] | None:
    """The commit and validation accuracy that ``main`` holds now; None for an empty repo."""
    info = api.model_info(repo_id, revision="main", files_metadata=False)
    if not any(sibling.rfilename == artifacts.METRICS_FILE for sibling in info.siblings or []):
        return None
    metrics = read_published_file(repo_id, artifacts.METRICS_FILE, info.sha, token=api.token)
    return {"repo_id": repo_id, "commit": info.sha, "accuracy": metrics.get("validation", {}).get("accuracy")}


def _record_parent(folder: artifacts.ModelFolder, repo_id: str, parent: dict[str, Any] | None) -> None:
    config = {**folder.config, "repo_id": repo_id, "parent": parent}
    artifacts.write_json(folder.path / artifacts.CONFIG_FILE, config)
    render_model_card(config, folder.metrics, repo_id=repo_id).save(folder.path / artifacts.CARD_FILE)


@contextmanager
def _explained(action: str) -> Iterator[None]:
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

"""Every conversation with the Hugging Face Hub: uploads, downloads, the log mirror, and their errors.

A model folder goes up as one commit (:func:`upload_model_folder`), exactly as it is on disk,
so the model, its label map and its card can never be out of step on the Hub; a server
fetches exactly one revision (:func:`fetch_model`) and knows which commit it got; ``--data
hf:`` datasets are downloaded here (:func:`download_dataset`) and the prediction log is
mirrored here (:func:`start_mirror`). What to publish where (parent, candidate branch) is
:mod:`bird_model.release`'s decision. Failures become :class:`HubError` with one line a
person can act on (:func:`explained`); the client's own exception types stay inside this
module. Tokens are passed to ``huggingface_hub`` and never formatted into any message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from huggingface_hub import HfApi, get_token, hf_hub_download, snapshot_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from bird_model import artifacts
from bird_model.console import first_line

if TYPE_CHECKING:
    from huggingface_hub import CommitScheduler

NO_TOKEN = "no Hugging Face token found; set HF_TOKEN, pass --token, or run `hf auth login`."


class HubError(RuntimeError):
    """A Hub operation that failed for a reason the user can fix; the message says which."""


@dataclass(frozen=True)
class FetchedModel:
    """A model folder on local disk and where it came from (``repo_id``/``commit`` None for a local folder)."""

    folder: artifacts.ModelFolder
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    tag: str | None = None
    """A tag of the repo at ``commit`` (the release promoted to ``main``, say ``v2``), if any."""

    def version(self) -> str:
        """The model's name and version as the public page and API show it: never a local path."""
        if self.repo_id is None:
            facts = self.folder.facts
            return f"{facts.model_name} (local, trained {facts.created_at[:10]})"
        return f"{self.repo_id}@{self.commit[:7] if self.commit else self.revision}"

    def origin(self) -> str:
        """Where it was read from, for the operator's console."""
        return f"local folder {self.folder.path}" if self.repo_id is None else self.version()


def is_repo_id(text: str) -> bool:
    """``OWNER/NAME`` as the Hub accepts it: ``huggingface_hub``'s own check, and an owner (which it lets go missing)."""
    if text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def card_links(card: Mapping[str, object]) -> tuple[str | None, tuple[str, ...]]:
    """The license and datasets a model card names, kept only where they are well-formed Hub ids.

    The card is another repo's text, written by whoever published it; only ids go on to the
    Space's card, never free text.
    """
    license_id = card.get("license")
    license_id = license_id if isinstance(license_id, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]{0,63}", license_id) \
        else None
    datasets = card.get("datasets")
    datasets = [datasets] if isinstance(datasets, str) else datasets if isinstance(datasets, list) else []
    return license_id, tuple(name for name in datasets if isinstance(name, str) and is_dataset_id(name))


def is_dataset_id(text: str) -> bool:
    """A Hub dataset id: ``OWNER/NAME``, or a legacy one-word id such as ``common_voice``."""
    return is_repo_id(text) or ("/" not in text and is_repo_id(f"owner/{text}"))


def require_token(token: str | None, action: str) -> None:
    """Refuse at once, before any request, when neither ``token`` nor a saved login exists."""
    if not (token or get_token()):
        raise HubError(f"{action} failed: {NO_TOKEN}")


@dataclass(frozen=True)
class PublishedFiles:
    commit: str
    files: frozenset[str]


def published_files(repo_id: str, revision: str, token: str | None = None) -> PublishedFiles | None:
    """The commit and file names of a model repo's revision; None when the repo does not exist."""
    with explained(f"reading the current model of {repo_id}"):
        try:
            info = HfApi(token=token).model_info(repo_id, revision=revision)
        except RepositoryNotFoundError:
            return None
    return PublishedFiles(info.sha, frozenset(sibling.rfilename for sibling in info.siblings or []))


def create_model_repo(repo_id: str, *, private: bool, token: str | None) -> None:
    with explained(f"publishing to {repo_id}"):
        HfApi(token=token).create_repo(repo_id, private=private, exist_ok=True)


@dataclass(frozen=True)
class Published:
    """A model folder's commit on the Hub, with the tag and branch it went to."""

    repo_id: str
    commit: str
    commit_url: str
    tag: str | None
    branch: str


def upload_model_folder(
    path: Path,
    repo_id: str,
    *,
    token: str | None,
    branch: str,
    branch_from: str | None,
    tag: str | None,
    commit_message: str,
    tag_message: str | None,
) -> Published:
    """Upload the folder as it is on disk, as one commit on ``branch`` replacing every file there.

    ``branch_from``: create ``branch`` from this commit first (for a candidate branch).
    """
    api = HfApi(token=token)
    with explained(f"publishing to {repo_id}"):
        if branch_from is not None:
            api.create_branch(repo_id, branch=branch, revision=branch_from, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            revision=branch,
            commit_message=commit_message,
            ignore_patterns=[".*", "**/.*"],
            delete_patterns=["*"],
        )
        if tag:
            api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=tag_message)
    return Published(repo_id, commit.oid, commit.commit_url, tag, branch)


def fetch_model(source: str, revision: str | None = None, token: str | None = None) -> FetchedModel:
    """A local model folder as is, or one revision of a Hub repo (downloaded once, then cached).

    Only the files the app needs are downloaded. With ``HF_HUB_OFFLINE=1`` the cached copy is
    used without any network access.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        return FetchedModel(artifacts.read_model_folder(local))
    missing = "the folder does not exist" if not local.exists() else "it is a file, not a model folder"
    if not is_repo_id(source):
        raise HubError(f"{source}: {missing} (and it is not a Hub repo id OWNER/NAME).")
    wanted = revision or "main"
    try:
        with explained(f"downloading {source} at revision {wanted!r}"):
            snapshot = Path(
                snapshot_download(source, revision=wanted, allow_patterns=artifacts.SERVING_PATTERNS, token=token)
            )
            # snapshot_download lays revisions out as .../snapshots/<commit sha>: same commit, more files.
            more = ([] if (snapshot / artifacts.RUN_CONFIG_FILE).is_file() else [artifacts.LEGACY_CONFIG_FILE]) + (
                [] if (snapshot / artifacts.LITERT_FILE).is_file() else artifacts.KERAS_PATTERNS)
            if more:
                snapshot_download(source, revision=snapshot.name, allow_patterns=more, token=token)
    except HubError as error:
        # OWNER/NAME is also a relative path (runs/birds): say what both readings found.
        raise HubError(f"{source}: {missing}, and it is not available from the Hub ({str(error).rstrip('.')}).") from error
    try:
        folder = artifacts.read_model_folder(snapshot)
    except artifacts.ModelFolderError as error:
        raise HubError(f"{source} at {wanted!r} is not a usable model folder: {error}") from error
    return FetchedModel(folder, repo_id=source, revision=wanted, commit=snapshot.name,
                        tag=_tag_at(source, snapshot.name, wanted, token))


def _tag_at(repo_id: str, commit: str, wanted: str, token: str | None) -> str | None:
    """The tag naming ``commit``: the revision asked for when it is one, else any tag at that commit.

    Only a label for the page, so it never stops serving: offline (``HF_HUB_OFFLINE=1``) or on
    any Hub error there is simply no tag.
    """
    try:
        tags = {tag.name: tag.target_commit for tag in HfApi().list_repo_refs(repo_id, token=token).tags}
    except Exception:  # noqa: BLE001 - offline, refused, anything: the page then names no tag
        return None
    if tags.get(wanted) == commit:
        return wanted
    return next((name for name, target in sorted(tags.items()) if target == commit), None)


def read_published_file(repo_id: str, filename: str, revision: str, token: str | None = None) -> dict[str, Any]:
    """One JSON file of a published revision (for comparing a new model with its parent)."""
    with explained(f"reading {filename} of {repo_id}@{revision}"):
        return json.loads(Path(hf_hub_download(repo_id, filename, revision=revision, token=token)).read_text())


def read_published_card(repo_id: str, revision: str, token: str | None = None) -> dict[str, Any]:
    """The YAML metadata of a published revision's card (``README.md``); empty when it has none."""
    import yaml
    from huggingface_hub.repocard import metadata_load

    with explained(f"reading {artifacts.CARD_FILE} of {repo_id}@{revision}"):
        path = Path(hf_hub_download(repo_id, artifacts.CARD_FILE, revision=revision, token=token))
    try:
        metadata = metadata_load(path)
    except (ValueError, yaml.YAMLError):  # a front matter that does not parse says nothing
        return {}
    return metadata if isinstance(metadata, dict) else {}


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


# -- datasets for --data hf: --------------------------------------------------------------


def parse_dataset_uri(uri_text: str) -> tuple[str, str, str | None, str]:
    """``hf://`` URI by huggingface_hub's own grammar: (repo type, repo id, revision, path in repo).

    Raises ``ValueError`` with the client's reason.
    """
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    try:
        uri = parse_hf_uri(uri_text)
    except HfUriError as error:
        raise ValueError(error.msg.strip()) from error
    return uri.type, uri.id, uri.revision, uri.path_in_repo


def download_dataset(repo_id: str, revision: str | None, url: str) -> Path:
    """Fetch (or reuse the cached snapshot of) a Hub dataset repo; ``url`` is its page, for advice."""
    wanted = revision or hf_constants.DEFAULT_REVISION
    where = f"{repo_id}@{wanted}"
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except RevisionNotFoundError as error:
        raise HubError(
            f"The Hub dataset {repo_id} has no revision {wanted!r}; use a branch, tag or commit "
            f"listed at {url}/commits/main."
        ) from error
    except GatedRepoError as error:
        raise HubError(
            f"The Hub dataset {repo_id} is gated; accept its conditions at {url} and log in "
            f"(hf auth login, or set HF_TOKEN)."
        ) from error
    except RepositoryNotFoundError as error:
        raise HubError(
            f"There is no dataset {repo_id} on the Hub at {hf_constants.ENDPOINT}; check the name at "
            f"{url}, and if it is private log in (hf auth login, or set HF_TOKEN)."
        ) from error
    except HfHubHTTPError as error:
        raise HubError(
            f"The Hub refused {where} (HTTP {error.response.status_code}: {first_line(error)}); "
            f"check HF_TOKEN and retry later."
        ) from error
    except LocalEntryNotFoundError as error:
        raise HubError(
            f"Cannot reach the Hub at {hf_constants.ENDPOINT} and no complete copy of {where} is cached; check "
            f"the network connection, proxy settings (HTTPS_PROXY), HF_ENDPOINT and HF_HUB_OFFLINE, then retry."
        ) from error
    except httpx2.TransportError as error:
        raise HubError(
            f"The network failed while downloading {where} from {hf_constants.ENDPOINT} "
            f"({type(error).__name__}: {first_line(error)}); check the connection and proxy settings, then retry."
        ) from error


# -- the prediction log's mirror ----------------------------------------------------------


def start_mirror(repo: str, folder: Path, every_minutes: float, token: str | None,
                 patterns: list[str]) -> CommitScheduler:
    """A private dataset repo (created if missing) receiving ``patterns`` of ``folder`` every few minutes."""
    from huggingface_hub import CommitScheduler

    with explained(f"mirroring the prediction log to {repo}"):
        return CommitScheduler(
            repo_id=repo,
            repo_type="dataset",
            folder_path=folder,
            every=every_minutes,
            private=True,
            token=token,
            allow_patterns=patterns,
        )


def final_push(mirror: CommitScheduler) -> None:
    """Upload what the last flush wrote, in this thread.

    Stopping first keeps the scheduler from starting another push; one already running is
    waited for, so commits never overlap. The push runs here rather than through the
    client's executor because at interpreter exit (``atexit``) that executor takes no work.
    """
    mirror.stop()
    in_flight = getattr(mirror, "last_future", None)
    if in_flight is not None:
        futures.wait([in_flight])
    try:
        mirror.push_to_hub()
    except Exception as error:  # noqa: BLE001 - any Hub or network failure; the local log is intact
        print(f"Prediction log: last upload to {mirror.repo_id} failed ({error}); "
              f"the log stays in {mirror.folder_path}")

"""Kaggle datasets through kagglehub: the ``kaggle:`` spec's grammar, the download with its version, refusals.

kagglehub caches each download; only a pinned version (``@N``) is served from that cache
without asking Kaggle, so only a pinned spec works offline. kagglehub is optional (imported
when a ``kaggle:`` spec is used). Every failure is a :class:`KaggleError` whose one line says
what to do; :mod:`bird_model.sources` turns it into its own error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bird_model.console import first_line
from bird_model.settings import REFERENCE_PHOTOS

KAGGLE_FORM = "kaggle:OWNER/DATASET[@VERSION][/SUBFOLDER]"
KAGGLE_WEB = "https://www.kaggle.com"
KAGGLE_CREDENTIALS_HOWTO = (
    "create an API token at https://www.kaggle.com/settings/api and either put it in "
    "~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}) or set KAGGLE_USERNAME and KAGGLE_KEY "
    "(a new-style token also works as KAGGLE_API_TOKEN or ~/.kaggle/access_token); "
    "kagglehub.login() only helps when called in the same Python process"
)

_KAGGLE_SPEC = re.compile(
    r"(?P<owner>[A-Za-z0-9][\w-]*)/(?P<dataset>[A-Za-z0-9][\w.-]*)"
    r"(?:@(?P<version>[1-9][0-9]*))?(?:/(?P<subfolder>.+))?"
)


class KaggleError(Exception):
    """A Kaggle dataset that cannot be had; the message is one line that says what to do."""


@dataclass(frozen=True)
class KaggleTarget:
    """A dataset as a ``kaggle:`` spec names it."""

    owner: str
    dataset: str
    version: int | None
    subfolder: str

    @property
    def handle(self) -> str:
        """kagglehub's handle: ``owner/dataset`` or ``owner/dataset/versions/N``."""
        base = f"{self.owner}/{self.dataset}"
        return base if self.version is None else f"{base}/versions/{self.version}"

    @property
    def url(self) -> str:
        return f"{KAGGLE_WEB}/datasets/{self.handle}"


def parse_spec(rest: str, spec: str) -> KaggleTarget:
    """``OWNER/DATASET[@VERSION][/SUBFOLDER]`` (``rest``, the part after ``kaggle:`` of ``spec``)."""
    match = _KAGGLE_SPEC.fullmatch(rest.rstrip("/"))
    if match is None:
        raise KaggleError(
            f"{spec!r} is not a valid Kaggle spec; expected {KAGGLE_FORM}, "
            f"e.g. kaggle:muhammadadeelkaggle/birds-dataset."
        )
    version = match["version"]
    return KaggleTarget(
        owner=match["owner"],
        dataset=match["dataset"],
        version=int(version) if version else None,
        subfolder=match["subfolder"] or "",
    )


def import_kagglehub() -> ModuleType:
    """kagglehub is optional: only ``kaggle:`` specs need it, so it is imported here, not at module level."""
    try:
        import kagglehub
    except ImportError as error:
        raise KaggleError("kaggle: specs need the kagglehub package: pip install kagglehub") from error
    return kagglehub


def download(target: KaggleTarget) -> tuple[Path, str]:
    """Download (or reuse the cached copy of) a dataset; return its folder and the version it is.

    ``dataset_download`` returns only a path, and only the HTTP resolver's cache path spells
    the version (``.../versions/N``); kagglehub's tracker records the version every resolver
    (HTTP, Kaggle notebook, Colab) actually returned, keyed by the requested handle.
    """
    kagglehub = import_kagglehub()
    import requests
    from kagglehub.config import get_kaggle_credentials
    from kagglehub.exceptions import DataCorruptionError, KaggleApiHTTPError, UnauthenticatedError
    from kagglehub.handle import parse_dataset_handle
    from kagglehub.tracker import get_accessed_datasources

    try:
        download = Path(kagglehub.dataset_download(target.handle))
    except KaggleApiHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        raise refusal(target, status, has_credentials=get_kaggle_credentials() is not None) from error
    except UnauthenticatedError as error:
        raise refusal(target, 401, has_credentials=False) from error
    except (requests.ConnectionError, requests.Timeout) as error:
        raise KaggleError(
            f"Cannot reach Kaggle to download {target.handle} ({type(error).__name__}); check the network "
            f"connection and proxy settings (HTTPS_PROXY), then retry; a version downloaded before is reused "
            f"offline only when pinned, e.g. kaggle:{target.owner}/{target.dataset}@N. Or train on photos you "
            f"have: {offline_data_advice()}."
        ) from error
    except (requests.RequestException, DataCorruptionError) as error:
        raise KaggleError(
            f"Downloading {target.handle} from Kaggle failed ({type(error).__name__}: {first_line(error)}); retry."
        ) from error
    except ValueError as error:  # kagglehub's own: a malformed kaggle.json, an unreadable archive
        raise KaggleError(f"kagglehub could not download {target.handle}: {first_line(error)}") from error
    version = get_accessed_datasources().get(parse_dataset_handle(target.handle))
    return download, "unknown" if version is None else str(version)


def offline_data_advice() -> str:
    """``--data FOLDER`` (one sub-folder of photos per species), naming the reference photos where they are."""
    example = f" (here: --data {REFERENCE_PHOTOS})" if REFERENCE_PHOTOS.is_dir() else ""
    return f"--data FOLDER, a folder with one sub-folder of photos per species{example}"


def refusal(target: KaggleTarget, status: int | None, *, has_credentials: bool) -> KaggleError:
    """Word Kaggle's HTTP refusals; without credentials, Kaggle answers a private dataset like a missing one."""
    if status == 401 and has_credentials:
        return KaggleError(
            f"Kaggle rejected your credentials (HTTP 401) for {target.handle}; they may be wrong or revoked: "
            f"{KAGGLE_CREDENTIALS_HOWTO}."
        )
    if status == 401:
        return KaggleError(f"Kaggle needs credentials to download {target.handle}: {KAGGLE_CREDENTIALS_HOWTO}.")
    missing = (
        ""
        if has_credentials
        else f"; no Kaggle credentials were found, and private datasets need them: {KAGGLE_CREDENTIALS_HOWTO}"
    )
    if status == 403:
        return KaggleError(
            f"Kaggle denied access to {target.handle} (HTTP 403); if the dataset asks for consent, accept its "
            f"terms at {target.url}{missing}."
        )
    if status == 404:
        return KaggleError(
            f"Kaggle has no dataset {target.handle} (HTTP 404); check the owner, name and version at "
            f"{target.url}{missing}."
        )
    return KaggleError(f"Kaggle answered HTTP {status} for {target.handle}; retry later.")

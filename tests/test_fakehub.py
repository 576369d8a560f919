"""Runs the real huggingface_hub client against FakeHub, so other tests can trust it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http

from tests.fakehub import FakeHub

README = b"---\nlicense: mit\ntags:\n- birds\n---\n# Bird classifier\n"
FOLDER_FILES = {"README.md": README, "labels.txt": b"robin\nwren\n", "examples/a.jpg": b"\xff\xd8fake-jpeg"}


@pytest.fixture(autouse=True)
def quiet_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No implicit token and no telemetry call to huggingface.co (both read at import)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client backs off 1+2+4+8+8 s on 5xx; these keyword defaults are the only knob."""
    for fn in (_http.http_backoff, _http.http_stream_backoff.__wrapped__):  # the latter is a @contextmanager
        monkeypatch.setitem(fn.__kwdefaults__, "base_wait_time", 0.01)
        monkeypatch.setitem(fn.__kwdefaults__, "max_wait_time", 0.01)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as running:
        yield running


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.url, token="hf_write")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "upload"
    for name, data in FOLDER_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def read_tree(root: str | Path) -> dict[str, bytes]:
    base = Path(root)
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def download(hub: FakeHub, cache: Path, repo_id: str, **kwargs: object) -> dict[str, bytes]:
    kwargs.setdefault("token", False)
    return read_tree(snapshot_download(repo_id, endpoint=hub.url, cache_dir=cache, **kwargs))


def test_create_repo_model_and_dataset(hub: FakeHub, api: HfApi) -> None:
    assert api.create_repo("me/birds") == f"{hub.url}/me/birds"
    assert api.create_repo("me/birds", exist_ok=True) == f"{hub.url}/me/birds"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("me/birds")
    assert err.value.response.status_code == 409
    url = api.create_repo("me/photos", repo_type="dataset", private=True)
    assert url == f"{hub.url}/datasets/me/photos" and url.repo_type == "dataset"
    assert api.repo_info("me/photos", repo_type="dataset").private is True
    assert api.whoami()["auth"]["accessToken"]["role"] == "write"


def test_upload_folder_is_one_commit(hub: FakeHub, api: HfApi, folder: Path) -> None:
    api.create_repo("me/birds")
    info = api.upload_folder(folder_path=folder, repo_id="me/birds", commit_message="Add model")
    commits = hub.commits("me/birds")
    assert [c.message for c in commits] == ["initial commit", "Add model"]
    assert info.oid == commits[-1].sha and info.commit_url == f"{hub.url}/me/birds/commit/{info.oid}"
    assert hub.files("me/birds") == FOLDER_FILES
    assert ("POST", "/api/validate-yaml") in hub.requests
    assert [s.rfilename for s in api.model_info("me/birds").siblings] == sorted(FOLDER_FILES)
    # Unchanged files are skipped client-side thanks to the preupload oids: no empty commit.
    assert api.upload_folder(folder_path=folder, repo_id="me/birds").oid == info.oid


def test_revisions_by_branch_tag_and_sha(hub: FakeHub, api: HfApi, folder: Path, tmp_path: Path) -> None:
    api.create_repo("me/birds")
    first = api.upload_folder(folder_path=folder, repo_id="me/birds").oid
    api.create_tag("me/birds", tag="v1", tag_message="first release")
    api.create_tag("me/birds", tag="release/1", revision=first)  # travels URL-quoted as release%2F1
    with pytest.raises(HfHubHTTPError) as err:
        api.create_tag("me/birds", tag="v1")
    assert err.value.response.status_code == 409
    second = api.upload_file(path_or_fileobj=b"robin\n", path_in_repo="labels.txt", repo_id="me/birds").oid

    refs = api.list_repo_refs("me/birds")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second)]
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags][0] == ("v1", "refs/tags/v1", first)
    assert hub.tags("me/birds") == {"v1": first, "release/1": first}

    cache = tmp_path / "cache"
    assert download(hub, cache, "me/birds")["labels.txt"] == b"robin\n"
    assert download(hub, cache, "me/birds", revision="v1") == FOLDER_FILES
    assert download(hub, cache, "me/birds", revision="release/1") == FOLDER_FILES
    assert download(hub, cache, "me/birds", revision=first) == FOLDER_FILES
    assert download(hub, cache, "me/birds", revision=second) == hub.files("me/birds", revision=second)


def test_single_file_and_allow_patterns(hub: FakeHub, api: HfApi, folder: Path, tmp_path: Path) -> None:
    api.create_repo("me/birds")
    api.upload_folder(folder_path=folder, repo_id="me/birds")
    path = hf_hub_download("me/birds", "examples/a.jpg", endpoint=hub.url, cache_dir=tmp_path / "one", token=False)
    assert Path(path).read_bytes() == FOLDER_FILES["examples/a.jpg"]
    only_examples = download(hub, tmp_path / "some", "me/birds", allow_patterns=["examples/*"])
    assert only_examples == {"examples/a.jpg": FOLDER_FILES["examples/a.jpg"]}
    assert [f.path for f in api.list_repo_tree("me/birds")] == ["README.md", "examples", "labels.txt"]


def test_dataset_repos(hub: FakeHub, api: HfApi, folder: Path, tmp_path: Path) -> None:
    seeded = hub.seed_repo("me/photos", folder, repo_type="dataset", tag="v0")
    assert hub.tags("me/photos", repo_type="dataset") == {"v0": seeded}
    api.upload_file(path_or_fileobj=b"x", path_in_repo="extra.bin", repo_id="me/photos", repo_type="dataset")
    files = download(hub, tmp_path / "cache", "me/photos", repo_type="dataset")
    assert files == {**FOLDER_FILES, "extra.bin": b"x"}
    assert download(hub, tmp_path / "cache", "me/photos", repo_type="dataset", revision="v0") == FOLDER_FILES
    with pytest.raises(RepositoryNotFoundError):  # same id, wrong repo type
        download(hub, tmp_path / "cache", "me/photos")


def test_private_repo_needs_a_token(hub: FakeHub, folder: Path, tmp_path: Path) -> None:
    hub.seed_repo("me/secret", folder, private=True)
    with pytest.raises(RepositoryNotFoundError) as err:
        download(hub, tmp_path / "anonymous", "me/secret")
    assert err.value.response.status_code == 401
    path = snapshot_download("me/secret", endpoint=hub.url, cache_dir=tmp_path / "reader", token="hf_read")
    assert read_tree(path) == FOLDER_FILES


def test_missing_repo_revision_and_file(hub: FakeHub, folder: Path, tmp_path: Path) -> None:
    hub.seed_repo("me/birds", folder)
    with pytest.raises(RepositoryNotFoundError):
        download(hub, tmp_path / "a", "me/nothing")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token="hf_read").model_info("me/nothing")
    with pytest.raises(RevisionNotFoundError):
        download(hub, tmp_path / "b", "me/birds", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("me/birds", "README.md", revision="0" * 40, endpoint=hub.url, cache_dir=tmp_path / "c")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("me/birds", "missing.txt", endpoint=hub.url, cache_dir=tmp_path / "d", token=False)


def test_tokens(hub: FakeHub, folder: Path, tmp_path: Path) -> None:
    hub.seed_repo("me/birds", folder)
    with pytest.raises(HfHubHTTPError) as bad:
        download(hub, tmp_path / "cache", "me/birds", token="hf_unknown")
    assert bad.value.response.status_code == 401 and not isinstance(bad.value, RepositoryNotFoundError)
    for token, status in (("hf_read", 403), (False, 401)):
        with pytest.raises(HfHubHTTPError) as denied:
            HfApi(endpoint=hub.url, token=token).upload_folder(folder_path=folder, repo_id="me/birds")
        assert denied.value.response.status_code == status
    with pytest.raises(HfHubHTTPError) as denied:
        HfApi(endpoint=hub.url, token="hf_read").create_repo("me/new", exist_ok=True)
    assert denied.value.response.status_code == 403
    assert len(hub.commits("me/birds")) == 2


def test_stale_parent_commit_is_rejected(hub: FakeHub, api: HfApi, folder: Path) -> None:
    first = hub.seed_repo("me/birds", folder)
    hub.seed_repo("me/birds", folder, message="Someone else's commit")
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="me/birds", parent_commit=first)
    assert err.value.response.status_code == 412


@pytest.mark.usefixtures("fast_retries")
def test_injected_failures_are_retried_then_raised(hub: FakeHub, api: HfApi, folder: Path, tmp_path: Path) -> None:
    api.create_repo("me/birds")
    started = time.monotonic()
    hub.fail_next(2, status=503, path_prefix="/api/models/me/birds/commit")
    assert api.upload_folder(folder_path=folder, repo_id="me/birds").oid == hub.commits("me/birds")[-1].sha

    hub.fail_always(status=503, path_prefix="/api/models/me/birds/preupload")
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="me/birds")
    assert err.value.response.status_code == 503
    assert hub.requests.count(("POST", "/api/models/me/birds/preupload/main")) == 1 + 1 + 5

    hub.fail_always(status=503, path_prefix="/me/birds/resolve")
    with pytest.raises(LocalEntryNotFoundError) as hidden:
        hf_hub_download("me/birds", "labels.txt", endpoint=hub.url, cache_dir=tmp_path / "cache", token=False)
    assert isinstance(hidden.value.__cause__, HfHubHTTPError)
    assert hidden.value.__cause__.response.status_code == 503
    hub.clear_failures()
    hf_hub_download("me/birds", "labels.txt", endpoint=hub.url, cache_dir=tmp_path / "cache", token=False)
    assert time.monotonic() - started < 5


def test_offline_reload_from_cache(
    hub: FakeHub, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hub.seed_repo("me/birds", folder, tag="v1")
    cache, url = tmp_path / "cache", hub.url
    assert download(hub, cache, "me/birds", revision="v1") == FOLDER_FILES
    hub.stop()  # unreachable now: the cached refs/v1 and snapshot are enough
    unreachable = snapshot_download("me/birds", revision="v1", endpoint=url, cache_dir=cache, token=False)
    assert read_tree(unreachable) == FOLDER_FILES
    cached = snapshot_download("me/birds", revision="v1", cache_dir=cache, local_files_only=True)
    assert read_tree(cached) == FOLDER_FILES
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    labels = hf_hub_download("me/birds", "labels.txt", revision=sha, cache_dir=cache)
    assert Path(labels).read_bytes() == FOLDER_FILES["labels.txt"]
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download("me/birds", revision="main", cache_dir=cache)

"""Tests for ``--data`` specs: class-root discovery, spec parsing, and the Kaggle and Hub download paths.

Download-shaped folders are built in ``tmp_path`` from a few photos of the shared parrots
dataset (symlinked, never copied into the repo). Kaggle runs the real kagglehub client against
a stand-in HTTP server on 127.0.0.1 (see ``notes/kaggle.md`` for how its endpoint is chosen);
the Hub runs the real huggingface_hub client against ``tests/fakehub.py`` when it is there,
and ``snapshot_download`` (called in ``bird_model.hub``) is also replaced by a stub so the Hub
logic is covered either way.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from bird_model import hub
from bird_model import kaggle as kaggle_source
from bird_model.formats import SUPPORTED_EXTENSIONS
from bird_model.sources import DataSourceError, find_class_root, resolve_source
from tests.conftest import TINY_COLOURS, make_dataset, point_hub_at

PARROTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "parrots"
PHOTOS_PER_CLASS = 2
SHA = "0123456789abcdef0123456789abcdef01234567"

Photos = dict[str, list[Path]]


@pytest.fixture(scope="module")
def photos() -> Photos:
    """The smallest few photos of each parrot class, to keep folders and zips tiny."""
    if not PARROTS.is_dir():
        pytest.skip(f"the shared parrots dataset is missing at {PARROTS.resolve()}; it seeds the test folders")
    return {
        folder.name: sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_EXTENSIONS), key=lambda p: p.stat().st_size
        )[:PHOTOS_PER_CLASS]
        for folder in sorted(PARROTS.iterdir())
        if folder.is_dir()
    }


def plant(root: Path, photos: Photos, classes: int | None = None) -> Path:
    """Lay out ``root/<class>/<photo>`` as copies (links leaving the folder are not read); returns ``root``."""
    for name in sorted(photos)[:classes]:
        (root / name).mkdir(parents=True)
        for photo in photos[name]:
            shutil.copyfile(photo, root / name / photo.name)
    return root


def plant_flat(root: Path, photos: Photos) -> Path:
    root.mkdir(parents=True)
    for photo in photos[sorted(photos)[0]]:
        shutil.copyfile(photo, root / photo.name)
    return root


def error_of(spec: str) -> str:
    with pytest.raises(DataSourceError) as caught:
        resolve_source(spec)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Class-root discovery


def test_nested_class_root_is_found(tmp_path: Path, photos: Photos) -> None:
    download = tmp_path / "download"
    classes = plant(download / "Birds dataset", photos)
    (download / "README.txt").write_text("Parrots from the web")
    # The walk does not descend into a class root: this class folder would qualify on its own.
    plant(classes / "macaw", photos, classes=2)

    assert find_class_root(download, "kaggle:o/d") == classes


def test_local_folder_that_is_the_class_root(tmp_path: Path, photos: Photos) -> None:
    root = plant(tmp_path / "parrots", photos)

    resolved = resolve_source(str(root))

    assert resolved.path == root.resolve()
    assert resolved.provenance == {"type": "local", "name": root.name, "subfolder": "."}
    assert str(root.parent) not in json.dumps(resolved.record()), "published metadata must not hold local paths"


def test_local_nested_folder_records_the_subfolder(tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / "download" / "Birds dataset", photos)

    resolved = resolve_source(str(tmp_path / "download"))

    assert resolved.path.name == "Birds dataset"
    assert resolved.provenance["subfolder"] == "Birds dataset"


def test_ambiguous_layout_lists_candidates_and_how_to_pick(tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / "download" / "train", photos)
    plant(tmp_path / "download" / "valid", photos, classes=2)
    spec = str(tmp_path / "download")

    message = error_of(spec)

    assert "'train', 'valid'" in message
    assert f"--data {spec}/train" in message
    assert resolve_source(f"{spec}/valid").path == (tmp_path / "download" / "valid").resolve()


def test_hint_is_quoted_for_the_shell(tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / "Birds dataset" / "train", photos)
    plant(tmp_path / "Birds dataset" / "test", photos)

    with pytest.raises(DataSourceError, match="--data 'kaggle:o/d/Birds dataset/test'"):
        find_class_root(tmp_path, "kaggle:o/d")


def test_flat_folder_is_rejected(tmp_path: Path, photos: Photos) -> None:
    plant_flat(tmp_path / "photos", photos)

    message = error_of(str(tmp_path / "photos"))

    assert "not laid out folder-per-class" in message
    assert "ROOT/CLASS/IMAGE" in message


def test_local_folder_with_one_class_is_used_as_given(tmp_path: Path, photos: Photos) -> None:
    """New photos for retraining may cover one class; the merged dataset is checked later."""
    plant(tmp_path / "new photos", photos, classes=1)

    assert resolve_source(str(tmp_path / "new photos")).path == (tmp_path / "new photos").resolve()


def test_downloaded_single_class_folder_is_not_a_dataset(tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / "download", photos, classes=1)

    with pytest.raises(DataSourceError, match="not laid out folder-per-class"):
        find_class_root(tmp_path / "download", "kaggle:o/d")


def test_folder_without_images_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("no photos here")
    (tmp_path / "b" / "labels.csv").write_text("x,y")

    assert "holds no images" in error_of(str(tmp_path))


def test_hidden_files_and_folders_are_ignored(tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / ".cache" / "old", photos)  # would make it ambiguous if seen
    birds = plant(tmp_path / "birds", photos, classes=1)
    plant_flat(birds / ".thumbnails", photos)  # a hidden second "class"
    (birds / "junk").mkdir()
    (birds / "junk" / "._photo.jpg").write_bytes(b"macOS resource fork")

    assert "not laid out folder-per-class" in error_of(str(tmp_path))

    plant(tmp_path / "more", photos)
    assert find_class_root(tmp_path, "x") == tmp_path / "more"


def test_extensions_match_case_insensitively(tmp_path: Path, photos: Photos) -> None:
    first, second = (photos[name][0] for name in sorted(photos)[:2])
    for name, photo in (("robin", first), ("wren", second)):
        (tmp_path / name).mkdir()
        shutil.copyfile(photo, tmp_path / name / "PHOTO.JPG")

    assert find_class_root(tmp_path, "x") == tmp_path


# Specs


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "kaggle:",
        "kaggle:owner",
        "kaggle:/birds",
        "kaggle:owner/birds@latest",
        "kaggle:owner/birds@0",
        "kaggle:owner/birds//train",
        "kaggle:owner/birds/../etc",
        "kaggle:owner/birds/./train",
        "hf:",
        "hf:owner",
        "hf:owner/name@",
        "hf:own--er/name",
        "hf:owner/name//train",
        "hf:owner/name/../x",
        "hf://models/owner/name",
    ],
)
def test_malformed_specs_are_rejected_before_any_download(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setattr(hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded a malformed spec"))
    monkeypatch.setattr(kaggle_source, "import_kagglehub", lambda: pytest.fail("downloaded a malformed spec"))

    message = error_of(spec)

    assert "expected" in message or "--data" in message or "must be a plain relative path" in message


def test_missing_local_folder_says_what_specs_look_like(tmp_path: Path) -> None:
    message = error_of(str(tmp_path / "nowhere"))

    assert "does not exist" in message
    assert "kaggle:OWNER/DATASET" in message and "hf:OWNER/NAME" in message


def test_local_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "birds.zip").write_bytes(b"PK")

    assert "is a file, not a folder" in error_of(str(tmp_path / "birds.zip"))


def test_missing_subfolder_lists_what_is_there(tmp_path: Path, photos: Photos, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = plant(tmp_path / "snapshots" / SHA / "Birds dataset", photos).parent
    monkeypatch.setattr(hub, "snapshot_download", lambda *a, **k: str(snapshot))

    message = error_of("hf:birders/parrots/Bird dataset")

    assert "no folder 'Bird dataset'" in message and "'Birds dataset'" in message


# Kaggle, against a stand-in for its API


@dataclass
class KaggleStandIn:
    """The two routes ``kagglehub.dataset_download`` calls: GetDataset, then DownloadDataset.

    ``datasets`` maps (owner, slug) to {version: zip bytes}. With ``credentials`` set, only
    that username/key (HTTP Basic, as kagglehub sends them) is let in; others get Kaggle's 401.
    """

    datasets: dict[tuple[str, str], dict[int, bytes]]
    credentials: tuple[str, str] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def reply(self, route: str, body: dict[str, Any], authorization: str) -> tuple[int, str, bytes]:
        self.calls.append((route, body))
        expected = "Basic " + base64.b64encode(":".join(self.credentials or ()).encode()).decode()
        if self.credentials and authorization != expected:
            return _json_reply(401, {"code": 401, "message": "Unauthenticated"})
        versions = self.datasets.get((body.get("ownerSlug", ""), body.get("datasetSlug", "")))
        if versions is None:
            return _json_reply(404, {"code": 404, "message": "Dataset not found"})
        if route == "GetDataset":
            return _json_reply(200, {"currentVersionNumber": max(versions)})
        if route == "DownloadDataset" and body.get("datasetVersionNumber") in versions:
            return 200, "application/zip", versions[body["datasetVersionNumber"]]
        return _json_reply(404, {"code": 404, "message": "Not found"})


def _json_reply(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


class _KaggleHandler(BaseHTTPRequestHandler):
    prefix = "/api/v1/datasets.DatasetApiService/"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        stand_in: KaggleStandIn = self.server.stand_in  # type: ignore[attr-defined]
        if self.path.startswith(self.prefix):
            status, content_type, payload = stand_in.reply(
                self.path.removeprefix(self.prefix), body, self.headers.get("Authorization", "")
            )
        else:
            status, content_type, payload = _json_reply(404, {"code": 404, "message": f"No route {self.path}"})
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: ``KaggleStandIn.calls`` is what tests look at."""


def zip_of(folder: Path) -> bytes:
    """A Kaggle-style archive: the dataset's files relative to its top, symlinks stored as their targets."""
    archive = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive.read_bytes()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def kaggle_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Isolate kagglehub: its cache, no credentials from this machine, no proxy for 127.0.0.1.

    kagglesdk has no free-form endpoint setting; KAGGLE_API_ENVIRONMENT picks one of fixed
    hosts, and LOCALHOST ("http://localhost") is redirected here to the stand-in's port.
    """
    pytest.importorskip("kagglehub")
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # kagglesdk reads ~/.kaggle itself
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def point_kaggle_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, url)


@pytest.fixture
def kaggle(
    kaggle_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, photos: Photos
) -> Iterator[KaggleStandIn]:
    """Serves birder/birds-dataset versions 2 (two classes) and 3 (four), nested like the real one."""
    v2 = zip_of(plant(tmp_path / "v2" / "Birds dataset", photos, classes=2).parent)
    v3 = zip_of(plant(tmp_path / "v3" / "Birds dataset", photos).parent)
    stand_in = KaggleStandIn({("birder", "birds-dataset"): {2: v2, 3: v3}}, credentials=("birder", "s3cret"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KaggleHandler)
    server.stand_in = stand_in  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    point_kaggle_at(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("KAGGLE_USERNAME", "birder")
    monkeypatch.setenv("KAGGLE_KEY", "s3cret")
    yield stand_in
    server.shutdown()
    server.server_close()
    thread.join()


def test_kaggle_download_finds_nested_classes_and_current_version(kaggle: KaggleStandIn, tmp_path: Path) -> None:
    resolved = resolve_source("kaggle:birder/birds-dataset")

    assert resolved.path == tmp_path / "kagglehub/datasets/birder/birds-dataset/versions/3/Birds dataset"
    assert len([p for p in resolved.path.iterdir() if p.is_dir()]) == 4
    assert resolved.provenance == {
        "type": "kaggle",
        "handle": "birder/birds-dataset",
        "version": "3",
        "subfolder": "Birds dataset",
    }
    assert [route for route, _ in kaggle.calls] == ["GetDataset", "DownloadDataset"]
    assert kaggle.calls[1][1]["datasetVersionNumber"] == 3


def test_kaggle_pinned_version_is_reused_from_cache(kaggle: KaggleStandIn) -> None:
    first = resolve_source("kaggle:birder/birds-dataset@2/Birds dataset")
    again = resolve_source("kaggle:birder/birds-dataset@2/Birds dataset")

    assert [route for route, _ in kaggle.calls] == ["DownloadDataset"]
    assert again == first
    assert again.provenance["version"] == "2"


def test_kaggle_wrong_credentials_say_how_to_fix_them(kaggle: KaggleStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "wrong")

    message = error_of("kaggle:birder/birds-dataset")

    assert "rejected your credentials" in message
    for way in ("~/.kaggle/kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "kagglehub.login()"):
        assert way in message


def test_kaggle_without_credentials_asks_for_them(kaggle: KaggleStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")

    message = error_of("kaggle:birder/birds-dataset")

    assert "needs credentials" in message and "~/.kaggle/kaggle.json" in message


def test_kaggle_missing_dataset(kaggle: KaggleStandIn) -> None:
    message = error_of("kaggle:birder/no-such-birds@4")

    assert "no dataset birder/no-such-birds/versions/4" in message
    assert "credentials" not in message


@pytest.mark.parametrize(
    ("status", "advice"),
    [(403, "accept its terms"), (404, "no Kaggle credentials were found"), (500, "HTTP 500")],
)
def test_kaggle_refusals_without_credentials(status: int, advice: str) -> None:
    """Anonymous, Kaggle answers a private dataset with 403 or 404, so both mention credentials."""
    target = kaggle_source.parse_spec("birder/birds-dataset", "kaggle:birder/birds-dataset")

    message = str(kaggle_source.refusal(target, status, has_credentials=False))

    assert advice in message
    assert ("KAGGLE_USERNAME" in message) == (status != 500)


@pytest.mark.parametrize("beside_reference_photos", [True, False])
def test_kaggle_unreachable_offers_a_local_folder(kaggle_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  beside_reference_photos: bool) -> None:
    """Offline, the way forward is the photos one has: --data FOLDER, naming the reference photos
    where they lie beside the working directory (as on the team's machines)."""
    point_kaggle_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    (tmp_path / "checkout").mkdir()
    if beside_reference_photos:
        make_dataset(tmp_path / "shared" / "datasets" / "parrots", TINY_COLOURS, per_class=2)
    monkeypatch.chdir(tmp_path / "checkout")

    message = error_of("kaggle:birder/birds-dataset")

    assert "Cannot reach Kaggle" in message and "kaggle:birder/birds-dataset@N" in message
    assert "--data FOLDER" in message
    assert ("--data ../shared/datasets/parrots" in message) == beside_reference_photos


def test_kaggle_without_kagglehub_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kagglehub", None)

    assert "pip install kagglehub" in error_of("kaggle:birder/birds-dataset")


# Hugging Face Hub, with snapshot_download stubbed


@pytest.fixture
def stub_hub(tmp_path: Path, photos: Photos, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A snapshot laid out as the Hub cache does, with train/ and test/ class roots; returns the calls."""
    snapshot = tmp_path / "hub" / "datasets--birders--parrots" / "snapshots" / SHA
    plant(snapshot / "train", photos)
    plant(snapshot / "test", photos)
    (snapshot / ".gitattributes").write_text("*.jpg filter=lfs")
    calls: list[dict[str, Any]] = []

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(snapshot)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    return calls


def test_hf_spec_downloads_the_dataset_repo_at_the_revision(stub_hub: list[dict[str, Any]]) -> None:
    resolved = resolve_source("hf:birders/parrots@v1.0/train")

    assert stub_hub == [{"repo_id": "birders/parrots", "repo_type": "dataset", "revision": "v1.0"}]
    assert resolved.path.parent.name == SHA
    assert resolved.provenance == {
        "type": "hf",
        "repo_id": "birders/parrots",
        "revision": "v1.0",
        "commit": SHA,
        "subfolder": "train",
    }


def test_hf_ambiguous_repo_then_subfolder_picks_one(stub_hub: list[dict[str, Any]]) -> None:
    message = error_of("hf:birders/parrots")

    assert "'test', 'train'" in message and "--data hf:birders/parrots/test" in message
    assert resolve_source("hf:birders/parrots/test").provenance["revision"] == "main"


def test_hf_full_uri_and_pr_revisions_are_understood(stub_hub: list[dict[str, Any]]) -> None:
    resolve_source("hf://datasets/birders/parrots@refs/pr/3/train")
    resolve_source("hf:birders/parrots@feature%2Fcrops/train")

    assert [call["revision"] for call in stub_hub] == ["refs/pr/3", "feature/crops"]


def _hub_response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://hub.example/api/datasets/birders/parrots"))


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (RevisionNotFoundError("no rev", response=_hub_response(404)), "has no revision"),
        (GatedRepoError("gated", response=_hub_response(403)), "accept its conditions"),
        (RepositoryNotFoundError("no repo", response=_hub_response(401)), "if it is private log in"),
        (HfHubHTTPError("boom", response=_hub_response(500)), "HTTP 500"),
        (LocalEntryNotFoundError("offline"), "Cannot reach the Hub"),
        (httpx2.ConnectError("refused"), "The network failed"),
        (httpx2.ReadTimeout("slow"), "The network failed"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_hf_failures_become_advice(monkeypatch: pytest.MonkeyPatch, error: Exception, advice: str) -> None:
    def failing(*args: Any, **kwargs: Any) -> str:
        raise error

    monkeypatch.setattr(hub, "snapshot_download", failing)

    assert advice in error_of("hf:birders/parrots")


# Hugging Face Hub, with the real client


def test_hf_unreachable_hub_without_cache(hub_client: None, monkeypatch: pytest.MonkeyPatch) -> None:
    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")

    assert "Cannot reach the Hub" in error_of("hf:birders/parrots")


def test_hf_real_client_records_the_commit_and_works_offline(fake_hub: Any, tmp_path: Path, photos: Photos) -> None:
    plant(tmp_path / "repo" / "Birds dataset", photos)
    sha = fake_hub.seed_repo("birders/parrots", tmp_path / "repo", repo_type="dataset", tag="v1")

    online = resolve_source("hf:birders/parrots@v1")
    fake_hub.stop()
    offline = resolve_source("hf:birders/parrots@v1")

    assert online.provenance == {
        "type": "hf",
        "repo_id": "birders/parrots",
        "revision": "v1",
        "commit": sha,
        "subfolder": "Birds dataset",
    }
    assert offline == online
    assert sorted(p.name for p in online.path.iterdir()) == sorted(photos)


@pytest.mark.parametrize(
    ("spec", "advice"),
    [
        ("hf:birders/no-such-parrots", "There is no dataset birders/no-such-parrots"),
        ("hf:birders/parrots@v9", "has no revision 'v9'"),
        ("hf:birders/secret-parrots", "if it is private log in"),
    ],
)
def test_hf_real_client_failures(fake_hub: Any, tmp_path: Path, photos: Photos, spec: str, advice: str) -> None:
    plant(tmp_path / "repo", photos)
    fake_hub.seed_repo("birders/parrots", tmp_path / "repo", repo_type="dataset")
    fake_hub.seed_repo("birders/secret-parrots", tmp_path / "repo", repo_type="dataset", private=True)

    assert advice in error_of(spec)

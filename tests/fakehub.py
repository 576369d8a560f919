"""A small in-memory Hugging Face Hub, served over HTTP on 127.0.0.1, for tests.

The tests run the real ``huggingface_hub`` client (measured against 2.4.0) because
the machine has no internet and mocking the client would hide protocol mistakes.
Only the routes the project uses are implemented: ``create_repo``, ``upload_folder``
/ ``upload_file`` / ``create_commit`` (every file is answered ``uploadMode: regular``,
so no LFS or Xet endpoint is ever needed), ``create_tag``, ``list_repo_refs``,
``repo_info`` / ``model_info`` / ``dataset_info`` / ``space_info`` / ``repo_exists``,
``list_repo_tree``, ``whoami``, ``hf_hub_download``, ``snapshot_download`` and
``create_branch``, for models, datasets and Spaces alike.

Spaces, with the real Hub's routes and payloads (huggingface_hub 2.4.0's ``hf_api.py``):

* ``create_repo(repo_type="space", space_sdk=...)``: ``POST /api/repos/create`` with
  ``"type": "space"`` and ``"sdk"`` (one of gradio, streamlit, docker, static; a 400
  without it), optionally ``"variables"`` / ``"secrets"`` as ``[{"key", "value"}]`` lists;
* ``get_space_variables``: ``GET /api/spaces/{id}/variables`` answers
  ``{KEY: {"value", "description", "updatedAt"}}``; ``add_space_variable``: ``POST`` there
  with ``{"key", "value"[, "description"]}``, ``delete_space_variable``: ``DELETE`` there
  with ``{"key"}``, both answering the variables as ``GET`` does;
* ``add_space_secret`` / ``delete_space_secret``: ``POST`` / ``DELETE
  /api/spaces/{id}/secrets`` (same payloads); ``get_space_secrets``: ``GET`` there answers
  ``{KEY: {"description", "updatedAt"}}``: values are write-only, as on the Hub. Tests read
  them with :meth:`FakeHub.space_secrets`;
* ``get_space_runtime``: ``GET /api/spaces/{id}/runtime`` answers ``{"stage", "hardware":
  {"current", "requested"}, "storage", "gcTimeout", "replicas", "devMode", "domains"}``.
  The stand-in builds nothing: a Space is ``RUNNING`` once its ``main`` holds ``app.py``,
  ``NO_APP_FILE`` before; :meth:`FakeHub.set_space_stage` sets any other stage.

Variables and secrets need a write token (401 anonymous, 403 read-only), like Space
settings on the Hub; the runtime is readable like the repo. Changing a variable does not
restart anything here (on the Hub it restarts the Space).

Usage::

    with FakeHub() as hub:
        api = HfApi(endpoint=hub.url, token="hf_write")
        ...
        snapshot_download(repo_id, endpoint=hub.url, cache_dir=tmp_path / "cache")

Client settings a test must care about:

* ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_DISABLE_TELEMETRY`` are read when
  ``huggingface_hub`` is imported. In-process tests pass ``endpoint=hub.url`` and patch
  ``huggingface_hub.constants.HF_HUB_OFFLINE`` / ``HF_HUB_DISABLE_TELEMETRY``; a
  subprocess gets them as environment variables. Telemetry must be off: otherwise the
  first request of a process also tries ``{ENDPOINT}/api/agent-harnesses`` (3 s timeout).
* A token is picked up implicitly from ``HF_TOKEN`` or ``constants.HF_TOKEN_PATH``
  (``$HF_HOME/token``); pass ``token=`` explicitly (``token=False`` for anonymous) and
  unset/patch those.
* A file already in the cache is returned silently even when the hub answers 401 or
  5xx, so failure tests need an empty cache (``cache_dir=tmp_path / ...``).
* Retries: ``http_backoff``/``http_stream_backoff`` retry 408/429/500/502/503/504 and
  connection errors 5 times, sleeping 1+2+4+8+8 = 23 s. There is no environment variable
  for this in 2.4.0; the waits are keyword defaults, so a test patches them::

      from huggingface_hub.utils import _http

      @pytest.fixture
      def fast_retries(monkeypatch):
          for fn in (_http.http_backoff, _http.http_stream_backoff.__wrapped__):
              monkeypatch.setitem(fn.__kwdefaults__, "base_wait_time", 0.01)
              monkeypatch.setitem(fn.__kwdefaults__, "max_wait_time", 0.01)

  A subprocess cannot be patched that way: inject a status the client never retries
  (e.g. 501), or at most one retried failure (one 1 s sleep), instead.
  Only preupload, tree listing, the commit of ``upload_folder`` (not of ``upload_file``
  or ``create_commit``) and the file HEAD (second attempt, when the file is not cached)
  retry; ``repo_info``, ``create_repo``, ``create_tag`` and downloads' GET fail at once.
* With ``hf_xet`` installed, ``upload_folder`` commits in batches of at most 256 files
  and 100 MB of content, so a large folder becomes several commits ("... (part 2)").

What the client raises (2.4.0), given this server's replies:

* missing repo, or private repo without a valid token (401/404 ``RepoNotFound``):
  ``RepositoryNotFoundError``; ``hf_hub_download`` / ``snapshot_download`` re-raise it;
* unknown branch/tag/sha: ``RevisionNotFoundError``;
* missing file: ``RemoteEntryNotFoundError`` (an ``EntryNotFoundError``);
* unknown token (401 "Invalid credentials in Authorization header") or a write without
  token (401): ``HfHubHTTPError`` with ``response.status_code == 401``;
* read token on a write route: ``HfHubHTTPError`` with status 403;
* 5xx on API calls (``upload_folder``, ``create_repo``, ...): ``HfHubHTTPError`` with that
  status; on downloads (``hf_hub_download``, ``snapshot_download``) the client hides it
  behind ``LocalEntryNotFoundError`` (the ``HfHubHTTPError`` is its ``__cause__``);
* hub unreachable or offline with nothing cached: ``LocalEntryNotFoundError``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TOKENS: Mapping[str, str] = {"hf_write": "write", "hf_read": "read"}
BAD_TOKEN_MESSAGE = "Invalid credentials in Authorization header"  # the client keys on this text
URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
SPACE_SETTINGS = ("variables", "secrets")


class HubError(Exception):
    """An error reply; raised from deep inside a route so that routes stay linear."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}


def git_blob_sha(data: bytes) -> str:
    """Git's blob id: the client compares it with its own to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Commit:
    """`files` is the full snapshot, so any revision is read without walking parents."""

    sha: str
    message: str
    parent: str | None
    files: Mapping[str, bytes]
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    sdk: str | None = None  # Spaces only, as everything below
    variables: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> {"value", "description", "updatedAt"}
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # the same, values never sent back
    stage: str | None = None  # set by tests; otherwise derived from the files (see runtime())

    def runtime(self) -> dict[str, Any]:
        """What ``GET /api/spaces/{id}/runtime`` answers (the fields ``SpaceRuntime`` reads, and a few more)."""
        stage = self.stage or ("RUNNING" if "app.py" in self.resolve("main").files else "NO_APP_FILE")
        running = stage in ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
        subdomain = self.repo_id.replace("/", "-").replace("_", "-").replace(".", "-").lower()
        return {
            "stage": stage,
            "hardware": {"current": "cpu-basic" if running else None, "requested": "cpu-basic"},
            "storage": None,
            "gcTimeout": 172800,
            "replicas": {"current": 1 if running else 0, "requested": 1},
            "devMode": False,
            "domains": [{"domain": f"{subdomain}.hf.space", "stage": "READY"}],
        }

    def resolve(self, revision: str) -> Commit:
        """A revision is a branch, then a tag, then a full commit sha, like on the Hub."""
        sha = self.branches.get(revision) or self.tags.get(revision) or revision
        for commit in self.commits:
            if commit.sha == sha:
                return commit
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def commit(self, branch: str, message: str, files: Mapping[str, bytes]) -> Commit:
        """Appends a commit holding the full snapshot `files` and moves `branch` to it."""
        parent = self.branches.get(branch)
        tree = sorted((path, git_blob_sha(data)) for path, data in files.items())
        seed = json.dumps([self.repo_type, self.repo_id, len(self.commits), parent, message, tree])
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), message, parent, dict(files), date)
        self.commits.append(commit)
        self.branches[branch] = commit.sha
        return commit


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)  # bytes are sent as is, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    path_prefix: str
    remaining: int | None  # None: until clear_failures()


@dataclass(frozen=True)
class _Request:
    method: str
    path: list[str]  # raw (still quoted) path segments
    query: dict[str, list[str]]
    host: str
    role: str | None  # "read", "write", or None when anonymous
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


class FakeHub:
    """An in-memory hub served by a background thread; see the module docstring."""

    def __init__(self, tokens: Mapping[str, str] = DEFAULT_TOKENS, username: str = "tester"):
        self.tokens = dict(tokens)  # token -> "read" | "write"
        self.username = username  # namespace of repos created without organization
        self.requests: list[tuple[str, str]] = []  # (method, raw path with query) of every request
        self._repos: dict[tuple[str, str], Repo] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> FakeHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- helpers for tests ---------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503, path_prefix: str = "/") -> None:
        """Answers `status` to the next `n` requests whose raw path starts with `path_prefix`."""
        with self._lock:
            self._failures.append(_Failure(status, path_prefix, n))

    def fail_always(self, status: int = 503, path_prefix: str = "/") -> None:
        """Answers `status` to every matching request until `clear_failures()`."""
        with self._lock:
            self._failures.append(_Failure(status, path_prefix, None))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def seed_repo(
        self,
        repo_id: str,
        folder: str | Path,
        repo_type: str = "model",
        private: bool = False,
        message: str = "Seed from folder",
        tag: str | None = None,
    ) -> str:
        """Commits `folder` on top of `main` (creating the repo if needed) and returns the sha."""
        root = Path(folder)
        added = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        with self._lock:
            repo = self._repos.get((repo_type, repo_id)) or self._create(repo_type, repo_id, private)
            commit = repo.commit("main", message, {**repo.resolve("main").files, **added})
            if tag is not None:
                repo.tags[tag] = commit.sha
            return commit.sha

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        with self._lock:
            return dict(self._get(repo_type, repo_id).resolve(revision).files)

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """Oldest first; the first one is the empty commit made by repo creation."""
        with self._lock:
            return list(self._get(repo_type, repo_id).commits)

    def tags(self, repo_id: str, repo_type: str = "model") -> dict[str, str]:
        """Tag name -> commit sha."""
        with self._lock:
            return dict(self._get(repo_type, repo_id).tags)

    def space_variables(self, repo_id: str) -> dict[str, str]:
        """A Space's variables, key -> value."""
        with self._lock:
            return {key: item["value"] for key, item in self._get("space", repo_id).variables.items()}

    def space_secrets(self, repo_id: str) -> dict[str, str]:
        """A Space's secrets, key -> value: what the Hub keeps but never answers."""
        with self._lock:
            return {key: item["value"] for key, item in self._get("space", repo_id).secrets.items()}

    def space_sdk(self, repo_id: str) -> str | None:
        with self._lock:
            return self._get("space", repo_id).sdk

    def set_space_stage(self, repo_id: str, stage: str | None) -> None:
        """Pins what the runtime route reports (``BUILDING``, ``RUNTIME_ERROR``, ...); None derives it again."""
        with self._lock:
            self._get("space", repo_id).stage = stage

    def _get(self, repo_type: str, repo_id: str) -> Repo:
        return self._repos[(repo_type, repo_id)]

    def _create(self, repo_type: str, repo_id: str, private: bool, sdk: str | None = None) -> Repo:
        """New repos get an empty first commit so that `main` always resolves."""
        repo = Repo(repo_type, repo_id, private, sdk=sdk)
        repo.commit("main", "initial commit", {})
        self._repos[(repo_type, repo_id)] = repo
        return repo

    # -- HTTP dispatch -------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Turns one HTTP request into a reply; called by the handler thread."""
        with self._lock:
            self.requests.append((method, raw_path))
            split = urlsplit(raw_path)
            failure = self._take_failure(split.path)
            if failure is not None:
                return Reply(failure, {"error": "Injected failure"})
            try:
                request = _Request(
                    method,
                    split.path.strip("/").split("/"),
                    parse_qs(split.query),
                    headers.get("Host", ""),
                    self._role(headers.get("Authorization", "")),
                    body,
                )
                return self._route(request)
            except HubError as err:
                headers_out = {"X-Error-Message": err.message, **err.headers}
                if err.code is not None:
                    headers_out["X-Error-Code"] = err.code
                return Reply(err.status, {"error": err.message}, headers_out)

    def _take_failure(self, path: str) -> int | None:
        for failure in self._failures:
            if path.startswith(failure.path_prefix) and failure.remaining != 0:
                if failure.remaining is not None:
                    failure.remaining -= 1
                return failure.status
        return None

    def _role(self, authorization: str) -> str | None:
        """None for anonymous requests; an unknown token is rejected on every route."""
        if not authorization:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, BAD_TOKEN_MESSAGE)
        return self.tokens[token]

    def _route(self, req: _Request) -> Reply:
        path, method = req.path, req.method
        if path == ["api", "whoami-v2"] and method == "GET":
            return self._whoami(req)
        if path == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(req)
        if path == ["api", "validate-yaml"] and method == "POST":
            return Reply(body={"errors": [], "warnings": []})
        if len(path) >= 4 and path[0] == "api" and path[1] in URL_TYPES:
            return self._api_repo_route(req, URL_TYPES[path[1]], f"{path[2]}/{path[3]}", path[4:])
        resolve_at = 3 if path[0] in ("datasets", "spaces") else 2
        if len(path) > resolve_at + 2 and path[resolve_at] == "resolve" and method in ("GET", "HEAD"):
            repo_type = URL_TYPES[path[0]] if resolve_at == 3 else "model"
            repo = self._readable(repo_type, "/".join(path[resolve_at - 2 : resolve_at]), req)
            return self._resolve(repo, unquote(path[resolve_at + 1]), unquote("/".join(path[resolve_at + 2 :])))
        raise HubError(404, f"No route for {method} /{'/'.join(path)}")

    def _api_repo_route(self, req: _Request, repo_type: str, repo_id: str, rest: list[str]) -> Reply:
        action = (req.method, rest[0] if rest else "")
        revision = unquote(rest[1]) if len(rest) > 1 else "main"
        if action == ("GET", "") or action == ("GET", "revision"):
            return self._info(self._readable(repo_type, repo_id, req), revision)
        if action == ("GET", "tree"):
            recursive = req.query.get("recursive", ["false"])[0].lower() in ("true", "1")
            repo = self._readable(repo_type, repo_id, req)
            return self._tree(repo, revision, unquote("/".join(rest[2:])), recursive)
        if action == ("GET", "refs"):
            return self._refs(self._readable(repo_type, repo_id, req))
        if action == ("POST", "preupload"):
            return self._preupload(self._writable(repo_type, repo_id, req), revision, req.json())
        if action == ("POST", "commit"):
            return self._commit(self._writable(repo_type, repo_id, req), revision, req)
        if action == ("POST", "tag"):
            return self._tag(self._writable(repo_type, repo_id, req), revision, req.json())
        if action == ("POST", "branch"):
            return self._branch(self._writable(repo_type, repo_id, req), revision, req.json())
        if repo_type == "space" and len(rest) == 1:
            return self._space_route(req, repo_id, rest[0])
        raise HubError(404, f"No route for {req.method} {'/'.join(rest)}")

    def _space_route(self, req: _Request, repo_id: str, what: str) -> Reply:
        """Runtime (readable like the repo), and variables and secrets (Space settings: write access)."""
        if what == "runtime" and req.method == "GET":
            return Reply(body=self._readable("space", repo_id, req).runtime())
        if what not in SPACE_SETTINGS or req.method not in ("GET", "POST", "DELETE"):
            raise HubError(404, f"No route for {req.method} {what}")
        repo = self._writable("space", repo_id, req)
        settings = repo.variables if what == "variables" else repo.secrets
        if req.method == "POST":
            payload = req.json()
            _set_space_setting(settings, payload.get("key"), payload.get("value"), payload.get("description"))
        elif req.method == "DELETE":
            settings.pop(req.json().get("key"), None)
        if what == "secrets":
            return Reply(body={key: {k: v for k, v in item.items() if k != "value"} for key, item in settings.items()})
        return Reply(body=settings)

    # -- access control ----------------------------------------------------------------
    def _readable(self, repo_type: str, repo_id: str, req: _Request) -> Repo:
        """Like the Hub, hides private repos: 401 when anonymous, 404 when authenticated."""
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and req.role is None):
            raise HubError(401 if req.role is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, repo_type: str, repo_id: str, req: _Request) -> Repo:
        self._require_write(req)
        return self._readable(repo_type, repo_id, req)

    @staticmethod
    def _require_write(req: _Request) -> None:
        if req.role is None:
            raise HubError(401, "You must be authenticated to write")
        if req.role != "write":
            raise HubError(403, "Your token has no write access")

    # -- routes -----------------------------------------------------------------------
    def _whoami(self, req: _Request) -> Reply:
        if req.role is None:
            raise HubError(401, BAD_TOKEN_MESSAGE)
        access_token = {"displayName": "fakehub", "role": req.role}
        return Reply(body={"type": "user", "name": self.username, "auth": {"accessToken": access_token}, "orgs": []})

    def _create_repo(self, req: _Request) -> Reply:
        self._require_write(req)
        payload = req.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.username}/{payload['name']}"
        url = f"http://{req.host}/{URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            # The client reads `url` from the 409 too when `exist_ok=True`.
            return Reply(409, {"error": "You already created this repo", "url": url})
        private = payload.get("visibility") == "private" or payload.get("private") is True
        sdk = payload.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise HubError(400, f"Invalid Space SDK {sdk!r}: expected one of {', '.join(SPACE_SDKS)}")
        repo = self._create(repo_type, repo_id, private, sdk if repo_type == "space" else None)
        for what in SPACE_SETTINGS if repo_type == "space" else ():
            for item in payload.get(what) or []:
                _set_space_setting(getattr(repo, what), item.get("key"), item.get("value"), item.get("description"))
        return Reply(body={"url": url, "name": repo_id})

    def _info(self, repo: Repo, revision: str) -> Reply:
        commit = repo.resolve(revision)
        body = {
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "lastModified": commit.date,
            "tags": [],
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        }
        if repo.repo_type == "space":
            body |= {"sdk": repo.sdk, "runtime": repo.runtime()}
        return Reply(body=body)

    def _tree(self, repo: Repo, revision: str, folder: str, recursive: bool) -> Reply:
        files = repo.resolve(revision).files
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        if folder and folder not in folders:
            raise HubError(404, f"{folder} does not exist", "EntryNotFound")
        base = f"{folder}/" if folder else ""

        def listed(path: str) -> bool:
            return path.startswith(base) and (recursive or "/" not in path[len(base) :])

        entries = [{"type": "directory", "path": d, "oid": git_blob_sha(d.encode()), "size": 0} for d in folders]
        entries += [{"type": "file", "path": p, "oid": git_blob_sha(b), "size": len(b)} for p, b in files.items()]
        return Reply(body=sorted((e for e in entries if listed(e["path"])), key=lambda e: e["path"]))

    def _refs(self, repo: Repo) -> Reply:
        def refs(kind: str, names: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in names.items()]

        branches, tags = refs("heads", repo.branches), refs("tags", repo.tags)
        return Reply(body={"branches": branches, "tags": tags, "converts": [], "pullRequests": []})

    def _preupload(self, repo: Repo, revision: str, payload: dict[str, Any]) -> Reply:
        """Every file is 'regular': its bytes then travel base64-encoded inside the commit."""
        commit = repo.resolve(revision)
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha(commit.files[f["path"]]) if f["path"] in commit.files else None,
            }
            for f in payload["files"]
        ]
        return Reply(body={"files": files, "commitOid": commit.sha})

    def _commit(self, repo: Repo, branch: str, req: _Request) -> Reply:
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        files = dict(repo.resolve(branch).files)
        message = ""
        for line in req.body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                if value.get("parentCommit") not in (None, repo.branches[branch]):
                    raise HubError(412, "A commit has happened since. Please refresh and try again.")
                message = value["summary"]
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unsupported commit operation: {key}")
        commit = repo.commit(branch, message, files)
        commit_url = f"http://{req.host}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
        return Reply(body={"success": True, "commitOid": commit.sha, "commitUrl": commit_url, "pullRequestUrl": None})

    def _tag(self, repo: Repo, revision: str, payload: dict[str, Any]) -> Reply:
        commit = repo.resolve(revision)
        if payload["tag"] in repo.tags:
            raise HubError(409, f"Tag {payload['tag']} already exists")
        repo.tags[payload["tag"]] = commit.sha
        return Reply()

    def _branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> Reply:
        """create_branch: a new branch at ``startingPoint`` (default: main's head)."""
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main").sha
        return Reply()

    def _resolve(self, repo: Repo, revision: str, path: str) -> Reply:
        """Serves the bytes directly (no redirect); ETag names the blob in the client cache."""
        commit = repo.resolve(revision)
        if path not in commit.files:
            # X-Repo-Commit lets the client cache the absence of the file for this commit.
            raise HubError(404, f"{path} does not exist", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        etag = f'"{git_blob_sha(data)}"'
        return Reply(body=data, headers={"X-Repo-Commit": commit.sha, "ETag": etag})


def _set_space_setting(settings: dict[str, dict[str, str]], key: Any, value: Any, description: Any) -> None:
    """Adds or replaces one variable or secret, as ``POST /api/spaces/{id}/variables|secrets`` does."""
    if not isinstance(key, str) or not key or not isinstance(value, str):
        raise HubError(400, "A variable or secret needs a non-empty string 'key' and a string 'value'")
    item = {"value": value, "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
    if description is not None:
        item["description"] = str(description)
    settings[key] = item


class _Handler(BaseHTTPRequestHandler):
    """Reads the whole body, asks the hub for a reply, and closes the connection.

    `Connection: close` keeps stop() simple: no handler thread outlives its request,
    so a stopped hub refuses connections the way an unreachable one would.
    """

    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        reply = hub.handle(self.command, self.path, self.headers, body)
        raw = isinstance(reply.body, bytes)
        payload = reply.body if raw else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `FakeHub.requests` is the log tests look at."""

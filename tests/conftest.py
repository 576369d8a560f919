"""Shared fixtures: tiny synthetic datasets, the shared parrots dataset, and CLI runners."""

from __future__ import annotations

import importlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import _http
from PIL import Image

from bird_model.settings import CACHE_ENV
from tests.fakehub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT.parent / "shared" / "datasets" / "parrots"
PROXY_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_notop.proxy.weights.h5"

needs_parrots = pytest.mark.skipif(
    not PARROTS.is_dir(), reason=f"reference dataset not found at {PARROTS} (only present on the team's machines)"
)

LEARNING_BACKBONE = str(PROXY_WEIGHTS) if PROXY_WEIGHTS.is_file() else "none"
"""``--base-weights`` for tests that compare runs: the stand-in backbone, whose tiny models learn, where
the team's files are; elsewhere (CI) a random one, whose loss stays near log 2 but whose weights
still move, so runs can still be compared weight for weight."""
TINY = ("--base-weights", "none", "--epochs", "1", "--fine-tune-epochs", "0", "--image-size", "32")
"""The smallest real training run: a random backbone, one epoch, 32 px."""
TRAIN_TINY = (*TINY, "--no-quantize")
"""TINY serving float32: the 8-bit conversions and their comparison cost about 15 s a run, and only the
tests of that choice (tests/test_train_cli.py's complete folder, tests/test_quantization.py) need them."""
TRAIN_FAST = ("--base-weights", PROXY_WEIGHTS, "--epochs", "3", "--fine-tune-epochs", "1", "--image-size", "96",
              "--no-quantize")
"""The cheapest real train.py run: what it costs is TensorFlow's start and the export, not the model."""
TINY_COLOURS = {"red bird": (200, 40, 40), "blue bird": (40, 40, 200)}

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def solid_photo(path: Path, colour: tuple[int, int, int], size: int = 48, seed: int = 0) -> Path:
    """A noisy single-colour photo; different seeds give photos that are not near-duplicates."""
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.int16)
    pattern = rng.integers(-90, 90, size=(8, 8, 3))
    big = np.kron(pattern, np.ones((size // 8, size // 8, 1), dtype=np.int16))
    pixels = np.clip(base + big, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_dataset(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int = 6, start_seed: int = 0) -> Path:
    """A folder-per-class dataset of tiny synthetic photos."""
    for offset, (name, colour) in enumerate(classes.items()):
        for index in range(per_class):
            solid_photo(root / name / f"{index}.png", colour, seed=start_seed + 1000 * offset + index)
    return root


@pytest.fixture(scope="session", autouse=True)
def photo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One photo cache for every training run of the session (in-process or train.py), not the user's own."""
    folder = made_once(tmp_path_factory, "photo-cache", lambda folder: None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "birds", TINY_COLOURS)


def made_once(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder made by ``make`` once per test session, however many pytest-xdist workers share it.

    Each worker has its own session, so a plain session fixture would train the same model once per
    worker; the workers' common parent folder and a lock make the first one build it and the others
    wait for it. ``make`` gets an empty folder; a folder whose making failed is made again.
    """
    shared = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real model folder (random backbone, 32 px, two colours) made once by train.py.

    For tests that need some servable, publishable folder rather than a particular one; a test
    that changes the folder works on a copy.
    """
    def make(root: Path) -> None:
        result = run_script("train.py", "--data", make_dataset(root / "data", TINY_COLOURS), "--output",
                            root / "run", *TRAIN_TINY)
        assert result.returncode == 0, result.stderr

    return made_once(tmp_path_factory, "tiny-model", make) / "run"


@pytest.fixture(scope="session")
def parrot_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few photos per class of the reference dataset, copied into a temporary folder (links that
    leave a dataset folder are never read: bird_model/data.py)."""
    if not PARROTS.is_dir():
        pytest.skip(f"reference dataset not found at {PARROTS}")
    subset = tmp_path_factory.mktemp("subset") / "parrots"
    for class_dir in sorted(PARROTS.iterdir()):
        (subset / class_dir.name).mkdir(parents=True)
        for photo in sorted(class_dir.iterdir())[:6]:
            shutil.copyfile(photo, subset / class_dir.name / photo.name)
    return subset


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model of the whole reference set with the stand-in pretrained backbone.

    The whole set, not a subset: its 40 validation photos give the monitoring baseline
    something to stand on, and the run costs the same (TensorFlow's start and the export
    dominate it).
    """
    if not PARROTS.is_dir():
        pytest.skip(f"reference dataset not found at {PARROTS}")
    if not PROXY_WEIGHTS.is_file():
        pytest.skip(f"stand-in backbone weights not found at {PROXY_WEIGHTS}")

    def make(root: Path) -> None:
        result = run_script("train.py", "--data", PARROTS, "--output", root / "parrots", *TRAIN_FAST)
        assert result.returncode == 0, result.stderr

    return made_once(tmp_path_factory, "model", make) / "parrots"


def run_script(
    script: str, *args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``train.py``/``app.py`` as a user would (from the repository root unless ``cwd`` says otherwise)."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **QUIET_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_train_py(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``train.py`` started as a user starts it, not waited for: for runs killed midway or run side by side."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT,
        env={**os.environ, **QUIET_ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_here(script: str, *args: str | Path) -> subprocess.CompletedProcess:
    """``train.py``/``app.py``'s own ``main`` in this process, for runs that stop before any real work.

    What the user sees (exit status, output, error lines) without a new interpreter's start; a
    run that trains or serves, or that depends on the environment at import, uses :func:`run_script`.
    """
    module = importlib.import_module(Path(script).stem)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = module.main([str(arg) for arg in args])
        except SystemExit as exit:
            code = exit.code
    return subprocess.CompletedProcess([script, *map(str, args)], code, out.getvalue(), err.getvalue())


@pytest.fixture
def hub_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty cache, no token or telemetry from this machine, and no proxy for 127.0.0.1."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def point_hub_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """HF_ENDPOINT is read at import; in-process, both the API base and the file URL template must move."""
    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def fake_hub(hub_client: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The stand-in Hub, with this process's huggingface_hub pointed at it."""
    with FakeHub() as hub:
        point_hub_at(monkeypatch, hub.url)
        yield hub


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client backs off 23 s before giving up on a 5xx; the same retries, without the wait."""
    for function in (_http.http_backoff, _http.http_stream_backoff.__wrapped__):
        monkeypatch.setitem(function.__kwdefaults__, "base_wait_time", 0.01)
        monkeypatch.setitem(function.__kwdefaults__, "max_wait_time", 0.01)


def hub_env(hub: FakeHub, home: Path, token: str | None = "hf_write") -> dict[str, str]:
    """Environment for a train.py/app.py subprocess that talks to ``hub`` with its own empty cache."""
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": token or ""}
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningApp:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serving(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 180) -> Iterator[RunningApp]:
    """Start ``app.py`` as a real process on 127.0.0.1 and yield it once its page answers.

    Its prediction log goes to a scratch folder unless ``env`` names a ``BIRD_LOG_DIR``.
    Leaving, it is stopped with SIGTERM, as a Space or container stops it.
    """
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="app-", suffix=".log")[1])
    predictions = tempfile.TemporaryDirectory(prefix="predictions-")
    env = {"BIRD_LOG_DIR": predictions.name, **env}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *args],
            cwd=cwd,
            env={**os.environ, **QUIET_ENV, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", log_path)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(app.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"app.py did not start (exit {process.poll()}):\n{app.log()}")
            time.sleep(0.5)
        yield app
    finally:
        process.terminate()
        process.wait(timeout=30)
        log_path.unlink(missing_ok=True)
        predictions.cleanup()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def app_in_process(env: dict[str, str], *args: str) -> Iterator[str]:
    """``app.py``'s own ``build`` and ``launch``, in this process, on 127.0.0.1; yields the page's URL.

    For tests that only call the app: no interpreter start, no second TensorFlow import. Tests
    where the process itself matters (SIGTERM, --share, offline start) use :func:`serving`.
    """
    import app as app_module

    served = app_module.build(app_module.build_parser({**os.environ, **env}).parse_args(list(args)),
                              {**os.environ, **env})
    port = free_port()
    served.launch(server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        served.demo.close()
        served.log.close()

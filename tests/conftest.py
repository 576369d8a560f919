"""Shared fixtures: tiny synthetic datasets, the shared parrots dataset, and CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT.parent / "shared" / "datasets" / "parrots"
PROXY_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_notop.proxy.weights.h5"

needs_parrots = pytest.mark.skipif(
    not PARROTS.is_dir(), reason=f"reference dataset not found at {PARROTS} (only present on the team's machines)"
)

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


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "birds", {"red bird": (200, 40, 40), "blue bird": (40, 40, 200)})


@pytest.fixture
def parrot_subset(tmp_path: Path) -> Path:
    """A few photos per class of the reference dataset, linked (never copied into the repo)."""
    if not PARROTS.is_dir():
        pytest.skip(f"reference dataset not found at {PARROTS}")
    subset = tmp_path / "parrots"
    for class_dir in sorted(PARROTS.iterdir()):
        (subset / class_dir.name).mkdir(parents=True)
        for photo in sorted(class_dir.iterdir())[:6]:
            (subset / class_dir.name / photo.name).symlink_to(photo)
    return subset


def run_script(script: str, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``train.py``/``app.py`` as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **QUIET_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )

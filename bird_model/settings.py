"""Every default of training and serving, in one place; light to import, so options are checked before TensorFlow loads.

``train.py`` and ``app.py`` take their option defaults from these dataclasses, and docs/settings.md's
option tables show the same values (``tests/test_settings.py`` compares them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

RUNS_DIR = Path("runs")
LATEST_LINK = RUNS_DIR / "latest"
"""Where runs go without ``--output``, and the link to the newest, which the app serves by default."""

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024
"""Input sizes a model folder may declare: MobileNetV2 takes no less than 32 px, and a size beyond
1024 px is no photo classifier of ours but a folder crafted to make a server allocate gigabytes."""

DEFAULT_DATA = "kaggle:muhammadadeelkaggle/birds-dataset"
"""What ``train.py`` trains on without ``--data``: the original birds dataset on Kaggle."""
REFERENCE_PHOTOS = Path("../shared/datasets/parrots")
"""The team's reference photos beside a checkout (relative to the working directory): named as the
``--data`` to try when Kaggle cannot be reached, where it exists."""

DEFAULT_LICENSE = "unknown"
"""The model card's ``license`` without ``--license``: a model inherits its photos' terms,
which only the trainer knows, so the card does not guess. Any Hub license id is accepted
(https://huggingface.co/docs/hub/repositories-licenses)."""
CACHE_ENV = "BIRD_CACHE_DIR"
"""Environment variable that moves the photo cache (``train.py --cache-dir`` overrides it in turn)."""


def default_cache_dir() -> Path:
    """Where decoded photos are cached (:mod:`bird_model.cache`): ``$BIRD_CACHE_DIR``, else the user's cache folder.

    The user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``) rather than the project's: the
    same photos trained from several clones or notebooks are decoded once, and cleaning caches
    removes it like any other.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bird-model" / "photos"


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 30
    fine_tune_epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    fine_tune_fraction: float = 0.3
    patience: int = 5
    fine_tune_min_delta: float = 0.005
    """Smallest fall of validation loss that counts as progress in phase 2 (early stopping).

    Phase 2 epochs are the costly ones (a forward and backward pass through MobileNetV2), and on
    the reference parrots its validation loss moved by less than this for most of its 15 epochs:
    on 40 validation photos 0.005 is one photo's log-loss changing by 0.2, noise rather than
    learning. Phase 1 (seconds in all) keeps stopping on any improvement."""
    seed: int = 42


@dataclass(frozen=True)
class RunSettings:
    output: Path
    base_weights: str = "imagenet"
    image_size: int = 224
    validation_fraction: float = 0.2
    overwrite: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    """Decoded photos, reused by later runs (:func:`default_cache_dir`)."""
    resume: bool = False
    """Continue the interrupted run of this output from its checkpoint (:mod:`bird_model.checkpoints`)."""
    unknown_pass_rate: float = 0.98
    """Share of new in-distribution photos that should pass the "not one of my birds" check;
    the unknown threshold is calibrated on the validation photos for it (:mod:`bird_model.ood`):
    at most 2% of them are called unknown, whichever conversion is served."""
    model_name: str | None = None
    """The card's title and ``model_name``; None derives it from the first data source
    (``parrots`` -> ``parrots-classifier``: :func:`bird_model.card.default_model_name`)."""
    license: str = DEFAULT_LICENSE
    quantize: bool = True
    """Also convert to 8-bit LiteRT and serve the fastest conversion that holds accuracy
    (:mod:`bird_model.quantization`); False serves float32 and skips those conversions."""
    class_names_file: Path | None = None
    """A CSV of display names per language (:mod:`bird_model.class_names`); None shows folder names."""
    outlier_photos: Path | None = None
    """A folder of photos that are none of the classes (other birds, say): the card reports how many
    the served model calls unknown, and an 8-bit conversion must call unknown each one float32 does."""
    training: TrainingOptions = field(default_factory=TrainingOptions)


@dataclass(frozen=True)
class ServingSettings:
    top_k: int = 3
    """Classes shown per photo (capped at the class count)."""
    revision: str = "main"
    """Branch, tag or commit of a Hub model."""


@dataclass(frozen=True)
class ServedModel:
    """Which model the app serves and where it logs its predictions.

    ``app.py`` and ``python -m bird_model.monitor`` read it from the same variables with the
    same defaults, so the monitor run with the app's environment reports on what the app logged.
    """

    source: str = str(LATEST_LINK)
    """A model folder or a Hub repo id ``OWNER/NAME`` (``BIRD_MODEL``)."""
    revision: str | None = None
    """Branch, tag or commit of a Hub model (``BIRD_MODEL_REVISION``); None: ``ServingSettings.revision``."""
    log_dir: Path = Path("logs/predictions")
    """The prediction log folder (``BIRD_LOG_DIR``), relative to the working directory."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ServedModel:
        """An empty variable counts as unset, as in a Space's settings or a ``VAR= command`` line."""
        return cls(
            source=environ.get("BIRD_MODEL") or cls.source,
            revision=environ.get("BIRD_MODEL_REVISION") or None,
            log_dir=Path(environ.get("BIRD_LOG_DIR") or cls.log_dir),
        )

    def is_default_and_missing(self) -> bool:
        """Nothing named and nothing trained yet: the newcomer's case, which gets its own advice."""
        return self.source == str(LATEST_LINK) and not LATEST_LINK.exists()


@dataclass(frozen=True)
class FeedbackSettings:
    """How much of visitors' feedback the app keeps (``BIRD_FEEDBACK_PER_HOUR``, ``BIRD_FEEDBACK_PER_MINUTE``,
    ``BIRD_FEEDBACK_MAX_MB``).

    Every stored report is a stranger's photo on the operator's disk and, once accepted, training
    data, so one caller's weight and the total are both bounded.
    """

    per_hour: int = 20
    """Reports stored per caller (client address) in any hour. A visitor correcting the demo
    sends a handful; 20 leaves room for a keen one while a flood from one address (the poisoning
    replay of issue #20 sent 200 in 25 s) keeps 20."""
    per_minute: int = 30
    """Reports stored per minute from all callers together. A demo gets a handful an hour; a flood
    from many addresses at once (60 callers stored 250 reports in 20 s, a core's worth of decoding
    and re-encoding) is refused before any photo is decoded, so predictions keep their CPU."""
    max_mb: float = 1024
    """Feedback photos on disk in all (pending, accepted and "none of these"), counted from the
    disk at start-up so it holds across restarts: 1 GiB is about 5,000 phone photos."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FeedbackSettings:
        """Raises ``ValueError`` with one line naming the variable; an empty variable counts as unset."""
        return cls(per_hour=whole_number(environ, "BIRD_FEEDBACK_PER_HOUR", cls.per_hour, "reports"),
                   per_minute=whole_number(environ, "BIRD_FEEDBACK_PER_MINUTE", cls.per_minute, "reports"),
                   max_mb=positive_number(environ, "BIRD_FEEDBACK_MAX_MB", cls.max_mb, "megabytes"))

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * (1 << 20))


def whole_number(environ: Mapping[str, str], variable: str, default: int, unit: str) -> int:
    """A whole number, 1 or more, from ``environ[variable]`` (empty counts as unset); one line naming it otherwise."""
    text = environ.get(variable) or str(default)
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{variable}={text!r} must be a whole number of {unit}, 1 or more.")
    return int(text)


def positive_number(environ: Mapping[str, str], variable: str, default: float, unit: str) -> float:
    """A finite number above zero from ``environ[variable]`` (empty counts as unset); raises
    ``ValueError`` with one line naming the variable, so a typo stops the start, not a later write."""
    text = environ.get(variable) or str(default)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not 0 < number < math.inf:
        raise ValueError(f"{variable}={text!r} must be a positive number of {unit}.")
    return number


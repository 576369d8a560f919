"""This process's place in a multi-worker run, read from ``TF_CONFIG`` without loading TensorFlow.

Several machines train one model by running the same ``train.py`` command, each with a
``TF_CONFIG`` naming every worker and its own index (``bird_model.devices`` then uses
``MultiWorkerMirroredStrategy``). Worker 0 is the chief: it alone writes checkpoints and the
model folder and publishes; the others train their share of every step and write nothing.
Light to import, so that ``train.py`` refuses what a cluster cannot do before TensorFlow loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

TF_CONFIG_ENV = "TF_CONFIG"
WORKER_TIMEOUT_S = 120
"""How long a worker waits for the others at any step before giving up: a dead worker stops the
rest within this bound rather than never. It must cover the slowest worker's whole epoch-end
work (validation, the chief's checkpoint write), which for MobileNetV2 is seconds to a minute."""


class ClusterError(ValueError):
    """``TF_CONFIG`` is malformed, or asks for what a multi-worker run cannot do; the message says which."""


class WorkerLostError(RuntimeError):
    """Another worker stopped answering during training; the message says how to go on."""


@dataclass(frozen=True)
class Role:
    """Worker ``index`` of ``workers``; a run without ``TF_CONFIG`` is worker 0 of 1."""

    index: int = 0
    workers: int = 1

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes for everyone: one model folder, one checkpoint, one upload."""
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.workers > 1 or self.index > 0

    def describe(self) -> str:
        return f"worker {self.index} of {self.workers}" + (" (chief: writes the model folder)" if self.is_chief else "")


def current_role(environ: Mapping[str, str] = os.environ) -> Role:
    """This process's role from ``TF_CONFIG``; worker 0 of 1 without it."""
    text = environ.get(TF_CONFIG_ENV)
    if not text:
        return Role()
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
        kind = task["type"]
    except (ValueError, TypeError, KeyError) as error:
        raise ClusterError(
            f"{TF_CONFIG_ENV} is not a worker cluster ({type(error).__name__}: {error}); expected "
            '{"cluster": {"worker": ["HOST:PORT", ...]}, "task": {"type": "worker", "index": I}}.'
        ) from None
    if kind != "worker" or not isinstance(workers, list) or not 0 <= index < len(workers):
        raise ClusterError(
            f"{TF_CONFIG_ENV}: task {kind!r} {index} is not one of the {len(workers)} workers it lists "
            "(only \"worker\" tasks are used; worker 0 is the chief)."
        )
    return Role(index=index, workers=len(workers))


def check_resume(role: Role, resume: bool) -> None:
    """``--resume`` continues one process's checkpoint, which only the chief has; say how instead."""
    if resume and role.distributed:
        raise ClusterError(
            f"--resume does not work under {TF_CONFIG_ENV}: only the chief holds the checkpoint. Resume on the "
            f"chief's machine without {TF_CONFIG_ENV} (the same command with --resume), or start the workers over."
        )

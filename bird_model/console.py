"""What our commands print: TensorFlow's C++ start-up noise silenced, and a line per long step.

TensorFlow logs from C++ (absl) before any Python code can filter it: CUDA probing (an
"error" on every machine without a GPU, printed twice), CPU-feature notes, and a dozen
SavedModel/MLIR lines while converting to LiteRT. None of it is actionable for our users,
so every entry point silences it by importing :mod:`bird_model` (whose ``__init__`` calls
:func:`quiet_tensorflow`) before TensorFlow loads. Python warnings (``warnings``, and
TensorFlow's and Keras' Python loggers at WARNING) still show. A user who needs the C++
log sets ``TF_CPP_MIN_LOG_LEVEL=0`` explicitly; an explicit value is always kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

QUIET_CPP_LEVEL = "3"
"""TensorFlow's C++ minimum log level: 3 hides INFO, WARNING and ERROR lines; real failures
still reach the user as Python exceptions."""


def quiet_tensorflow(environ: MutableMapping[str, str] = os.environ) -> None:
    """Silence TensorFlow's C++ and absl start-up logging; must run before TensorFlow is imported.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once, when its C++ library loads, so setting it
    later does nothing. Python absl's logger is kept to errors: TensorFlow routes notes such
    as "Assets written to" through it.
    """
    if not environ.get("TF_CPP_MIN_LOG_LEVEL"):
        environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_CPP_LEVEL
    logging.getLogger("absl").setLevel(logging.ERROR)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Print ``description`` when a silent step starts and its duration when it ends.

    Steps after the last epoch (evaluation, calibration, conversion, writing the folder)
    print nothing of their own, so without these lines a run looks hung for many seconds.
    """
    print(f"{description} ...", flush=True)
    started = time.monotonic()
    yield
    print(f"  done in {time.monotonic() - started:.1f} s", flush=True)

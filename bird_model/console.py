"""What our commands print: TensorFlow's C++ start-up noise silenced, and a line per long step.

TensorFlow logs from C++ (absl) before any Python code can filter it: CUDA probing (an
"error" on every machine without a GPU, printed twice), CPU-feature notes, and a dozen
SavedModel/MLIR lines while converting to LiteRT. None of it is actionable for our users,
so every entry point silences it by importing :mod:`bird_model` (whose ``__init__`` calls
:func:`quiet_tensorflow`) before TensorFlow loads. ``TF_CPP_MIN_LOG_LEVEL`` stops most of
it; the CUDA probe at ``import tensorflow`` ignores it (tensorflow/tensorflow#100442), so that
import runs with the C++ log lines filtered out of stderr (:func:`cpp_log_filtered`). Python warnings (``warnings``, and TensorFlow's and
Keras' Python loggers at WARNING) still show. A user who needs the C++ log sets
``TF_CPP_MIN_LOG_LEVEL=0`` explicitly; an explicit value is always kept, and any value but
ours turns the filter off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from types import ModuleType

QUIET_CPP_LEVEL = "3"
"""TensorFlow's C++ minimum log level: 3 hides INFO, WARNING and ERROR lines; real failures
still reach the user as Python exceptions."""


CPP_LOG_LINE = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # absl: I0000 00:00:1796072795.306 1147 file.cc:31]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] "  # TensorFlow's own: 2025-01-01 10:00:00.1: I file.cc:31]
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."  # LiteRT's, at an interpreter's first run
    r"|fully_quantize: \d+, inference_type: "  # the 8-bit converter's calibration summary
)
"""A line of TensorFlow's (or LiteRT's) C++ log, as printed on stderr."""


def quiet_tensorflow(environ: MutableMapping[str, str] = os.environ) -> None:
    """Silence TensorFlow's C++ and absl start-up logging; must run before TensorFlow is imported.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once, when its C++ library loads, so setting it
    later does nothing. Python absl's logger is kept to errors: TensorFlow routes notes such
    as "Assets written to" through it.
    """
    if not environ.get("TF_CPP_MIN_LOG_LEVEL"):
        environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_CPP_LEVEL
    hooked = any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path)
    if environ["TF_CPP_MIN_LOG_LEVEL"] == QUIET_CPP_LEVEL and "tensorflow" not in sys.modules and not hooked:
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    logging.getLogger("absl").setLevel(logging.ERROR)


@contextmanager
def cpp_log_filtered() -> Iterator[None]:
    """Run a block with C++ log lines (:data:`CPP_LOG_LINE`) removed from stderr; the rest is kept.

    C++ writes to file descriptor 2 directly, so Python cannot intercept it: the block's
    stderr goes to a temporary file, replayed without the log lines when the block ends
    (Python warnings and errors of the block arrive then, in order).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not CPP_LOG_LINE.match(line)))
            sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` (whoever imports it) inside :func:`cpp_log_filtered`.

    Importing TensorFlow eagerly here would cost every command seconds before it could even
    check its options; hooking the import keeps it lazy and still catches the CUDA probe.
    """

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                with cpp_log_filtered():
                    load(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


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


def first_line(error: BaseException) -> str:
    """An exception's message as one short line for ours (a library's can run to pages), else its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]

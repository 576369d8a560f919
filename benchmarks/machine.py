"""What a benchmark ran on, printed with its figures: timings mean nothing without it."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "gradio", "pillow", "numpy")


def describe_machine() -> str:
    """CPU, cores, load and package versions, read without importing the packages.

    The load average is printed because the machines we measure on are shared: a busy
    neighbour shows up in p95 first.
    """
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return (
        f"Machine: {_cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"load average {load}\n"
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}; {versions}"
    )


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"

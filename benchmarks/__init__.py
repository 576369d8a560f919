"""Measurements run by hand from the repository root (``python benchmarks/NAME.py``); not tests."""

"""Refusals a visitor reads: the English words, and what a page needs to say them in another language."""

from __future__ import annotations

from typing import ClassVar


class Refusal(ValueError):
    """A file refused, in words fit to show a visitor as they are (English, from the class's ``REFUSALS``).

    ``reason`` (a key of ``REFUSALS``) and ``values`` (its placeholders) let the page say it in the
    visitor's language: its text table's ``refused_REASON``, filled with the same ``values``.
    """

    REFUSALS: ClassVar[dict[str, str]] = {}
    """English template of each reason, with ``str.format`` placeholders."""

    def __init__(self, reason: str, **values: object) -> None:
        super().__init__(self.REFUSALS[reason].format(**values))
        self.reason, self.values = reason, values

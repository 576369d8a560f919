"""The documentation holds together: every relative link reaches a file, every #anchor a heading,
and the README keeps its table of contents and the blocks .ci/run executes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "benchmarks" / "README.md",
                *(page for page in (ROOT / "docs").glob("*.md") if not page.name.startswith("pending-"))])
"""The published pages; ``docs/pending-NAME.md`` are notes waiting to be placed, not pages."""
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
README_SECTIONS = (
    "Quick start", "Train", "Serve and API", "Publish and go live", "Test", "Settings", "Troubleshooting",
)


def prose(path: Path) -> str:
    """The page without code blocks and code spans, where brackets are not links."""
    return CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def anchors(path: Path) -> Iterator[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    assert page.is_file()
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}: no such file"
        if anchor:
            assert linked.suffix == ".md", f"{page.relative_to(ROOT)} links to an anchor in {target}"
            assert anchor in set(anchors(linked)), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_the_readme_opens_with_its_table_of_contents() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    contents = text[text.index("**Contents**") : text.index("## Quick start")]
    listed = [link.removeprefix("#") for link in LINK.findall(contents) if link.startswith("#")]
    headings = set(anchors(readme))
    for section in README_SECTIONS:
        slug = section.lower().replace(" ", "-")
        assert f"\n## {section}\n" in text and slug in listed, section
    assert set(listed) <= headings
    assert len(text.splitlines()) < 400


def test_the_readme_keeps_the_blocks_ci_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for block, command in (("setup", "pip install -r requirements-dev.txt"), ("test", "python -m pytest")):
        start, end = text.index(f"<!-- ci:{block} -->"), text.index(f"<!-- /ci:{block} -->")
        assert command in text[start:end]
    assert text.index("## Test") > text.index("## Serve and API") > text.index("## Train")

"""The docs stay true: the settings table is the one the code generates, the quick start is the two
commands, and every relative link points to a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa.config import Settings, settings_table
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target), not inside code; the target up to the first space or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def test_settings_table_lists_every_field_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(CITEQA_[A-Z_]+)` \|", CONFIGURATION, flags=re.MULTILINE))
    expected = {f"CITEQA_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_settings_table_is_the_generated_one() -> None:
    """Regenerate with the command at the top of docs/configuration.md after editing a setting."""
    table_lines = [line for line in CONFIGURATION.splitlines() if line.startswith("|")]
    assert "\n".join(table_lines) + "\n" == settings_table()


def test_quick_start_is_make_run_and_make_test() -> None:
    quick_start = README.split("## Quick start")[1].split("##")[0]
    commands = re.findall(r"^make \w+", quick_start, flags=re.MULTILINE)
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated heading numbered."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _FENCE.sub("", markdown), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def relative_links(markdown: str) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def test_pages_have_links_to_check() -> None:
    assert len(PAGES) > 5
    assert all(relative_links(page.read_text(encoding="utf-8")) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.is_file():
            broken.append(f"{target} (no such file)")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in heading_anchors(linked.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: " + ", ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {Path(t.partition("#")[0]).name for t in relative_links(README)}
    assert {page.name for page in PAGES[1:]} <= linked

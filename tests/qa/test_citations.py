"""Citation markers: parsing, cleaning and mapping back to passages (pure functions)."""

from __future__ import annotations

import pytest

from index.types import Chunk
from qa.citations import clean_markers, find_markers, format_sources
from qa.grounding import make_citation
from qa.types import RetrievedChunk


def passage(n: int) -> RetrievedChunk:
    chunk = Chunk(
        id=f"c{n}",
        article_id=f"a{n}",
        index=0,
        text=f"Passage {n} text.",
        start=10 * n,
        end=10 * n + 16,
        title=f"Title {n}",
        source="Outlet" if n % 2 else None,
        url=f"https://example.org/{n}" if n == 1 else None,
        published="2024-01-0" + str(n),
    )
    return RetrievedChunk(chunk, score=1.0 - n / 10, rank=n, similarity=1.0 - n / 10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No markers.", []),
        ("One [1].", [1]),
        ("Two [2] then [1] then [2].", [2, 1]),
        ("List [1, 3].", [1, 3]),
        ("Adjacent [3][1].", [3, 1]),
        ("Not a marker [a] or [].", []),
        ("Big [12].", [12]),
    ],
)
def test_find_markers(text: str, expected: list[int]) -> None:
    assert find_markers(text) == expected


@pytest.mark.parametrize(
    ("text", "valid", "expected"),
    [
        ("Fine [1].", {1, 2}, "Fine [1]."),
        ("Dangling [7].", {1, 2}, "Dangling."),
        ("List [1, 7, 2].", {1, 2}, "List [1][2]."),
        ("Zero [0] and one [1].", {1}, "Zero and one [1]."),
    ],
)
def test_clean_markers(text: str, valid: set[int], expected: str) -> None:
    assert clean_markers(text, valid) == expected


def test_format_sources_lists_outlet_date_link_and_passage() -> None:
    text = format_sources([make_citation(n, passage(n), (), 0.0) for n in (1, 2)])
    assert text.splitlines() == [
        "[1] Title 1 (Outlet, 2024-01-01)",
        "    https://example.org/1",
        '    "Passage 1 text."',
        "[2] Title 2 (2024-01-02)",
        '    "Passage 2 text."',
    ]

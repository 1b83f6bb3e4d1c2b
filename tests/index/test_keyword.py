"""The BM25 keyword index: search, exclusions, saving beside Chroma and staying in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.chunking import Chunk
from index.errors import IndexMismatchError
from index.keyword import build_keyword_index, open_keyword_index, save_keyword_index, tokenize

TEXTS = [
    ("a1", "The harbour of Lindholm reopened after the storm."),
    ("a1", "Ferries to the islands run again from Friday."),
    ("a2", "Wang Lei spoke at the cyber taskforce in Brussels."),
    ("a3", "The storm flooded roads near the harbour."),
]


def chunks() -> list[Chunk]:
    return [
        Chunk(f"c{i}", article, 0, text, 0, len(text), "T")
        for i, (article, text) in enumerate(TEXTS)
    ]


def test_tokenize_lowercases_and_drops_stop_words() -> None:
    assert tokenize(["The Harbour of Lindholm"]) == [["harbour", "lindholm"]]


def test_search_ranks_by_keywords() -> None:
    keyword = build_keyword_index(chunks())
    assert [h.chunk_id for h in keyword.search("Wang Lei", 3)] == ["c2"]
    assert [h.chunk_id for h in keyword.search("harbour storm", 3)][:2] in (
        ["c0", "c3"],
        ["c3", "c0"],
    )
    assert keyword.search("zebra", 3) == []
    assert keyword.search("the of", 3) == []  # only stop words


def test_search_leaves_out_excluded_articles() -> None:
    keyword = build_keyword_index(chunks())
    hits = keyword.search("harbour storm", 4, exclude_articles={"a3"})
    assert [h.chunk_id for h in hits] == ["c0"]


def test_saved_index_answers_the_same(tmp_path: Path) -> None:
    keyword = build_keyword_index(chunks())
    save_keyword_index(keyword, tmp_path, "articles")
    save_keyword_index(keyword, tmp_path, "articles")  # replacing an existing one works too
    loaded = open_keyword_index(tmp_path, "articles", expected_chunks=4)
    assert loaded.search("Wang Lei", 2) == keyword.search("Wang Lei", 2)
    assert sorted(p.name for p in (tmp_path / "keyword").iterdir()) == ["articles"]


def test_missing_or_out_of_step_index_says_to_rebuild(tmp_path: Path) -> None:
    with pytest.raises(IndexMismatchError, match="python -m index rebuild"):
        open_keyword_index(tmp_path, "articles", expected_chunks=4)
    save_keyword_index(build_keyword_index(chunks()), tmp_path, "articles")
    with pytest.raises(IndexMismatchError, match="has 4 chunks but the vector index has 5"):
        open_keyword_index(tmp_path, "articles", expected_chunks=5)

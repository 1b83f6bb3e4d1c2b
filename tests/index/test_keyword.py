"""The BM25 keyword index: search, exclusions, saving beside a build, following a new build."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.errors import IndexDamagedError
from index.keyword import (
    build_keyword_index,
    load_keyword_index,
    save_keyword_index,
    tokenize,
    word_terms,
)
from index.types import Chunk

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
    save_keyword_index(keyword, tmp_path / "keyword")
    loaded = load_keyword_index(tmp_path / "keyword", expected_chunks=4)
    assert loaded.search("Wang Lei", 2) == keyword.search("Wang Lei", 2)
    assert loaded.term_weight("wang") == keyword.term_weight("wang")


def test_an_index_follows_another_in_place() -> None:
    held = build_keyword_index(chunks()[:2])
    assert held.search("Wang Lei", 2) == []
    held.follow(build_keyword_index(chunks()))
    assert [h.chunk_id for h in held.search("Wang Lei", 2)] == ["c2"]
    assert len(held) == 4


def test_missing_damaged_or_out_of_step_index_says_to_rebuild(tmp_path: Path) -> None:
    directory = tmp_path / "keyword"
    with pytest.raises(IndexDamagedError, match=r"is missing\. .*python -m index rebuild"):
        load_keyword_index(directory, expected_chunks=4)
    save_keyword_index(build_keyword_index(chunks()), directory)
    with pytest.raises(IndexDamagedError, match="has 4 chunks but the vector index has 5"):
        load_keyword_index(directory, expected_chunks=5)
    (directory / "vocab.index.json").write_text("{", encoding="utf-8")
    with pytest.raises(IndexDamagedError, match=r"is damaged \(JSONDecodeError\)"):
        load_keyword_index(directory, expected_chunks=4)


@pytest.mark.parametrize("word", ["american", "o'neill", "covid-19", "x", "Ukraine's"])
def test_word_terms_are_the_terms_tokenize_makes_of_a_word(word: str) -> None:
    (terms,) = tokenize([word])
    assert word_terms(word) == terms


def test_word_terms_read_a_dotted_abbreviation_as_one_word() -> None:
    assert tokenize(["u.s"]) == [[]]  # the index keeps no term of one letter
    assert word_terms("u.s") == ["us"]

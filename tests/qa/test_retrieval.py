"""Dense, keyword and hybrid retrieval over the real sample index."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.types import Chunk
from qa.chain import build_retriever
from qa.retrieval import PassageRetriever, fuse_rankings, limit_per_article
from qa.types import RetrievedChunk
from tests.conftest import XINHUA_TITLE, make_settings


@pytest.mark.parametrize(
    ("rankings", "expected"),
    [
        ([["a", "b"], ["b", "c"]], [("b", 1 / 62 + 1 / 61), ("a", 1 / 61), ("c", 1 / 62)]),
        ([["a"], []], [("a", 1 / 61)]),
        ([["x", "y"], ["y", "x"]], [("x", 1 / 61 + 1 / 62), ("y", 1 / 62 + 1 / 61)]),
    ],
)
def test_fuse_rankings(rankings: list[list[str]], expected: list[tuple[str, float]]) -> None:
    fused = fuse_rankings(rankings)
    assert [item for item, _ in fused] == [item for item, _ in expected]
    assert [score for _, score in fused] == pytest.approx([score for _, score in expected])


@pytest.fixture(scope="module")
def hybrid(sample_index: Path) -> PassageRetriever:
    return build_retriever(make_settings(sample_index, retriever="hybrid"))


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_finds_the_article_and_reports_similarity(
    hybrid: PassageRetriever, mode: str
) -> None:
    retriever = hybrid.model_copy(update={"mode": mode})
    hits = retriever.search("Wang Lei coordinator for cyber and digital affairs", 4).passages
    assert hits[0].chunk.title == XINHUA_TITLE
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits)
    assert hits[0].similarity > 0.3


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_honours_exclusions(hybrid: PassageRetriever, mode: str) -> None:
    retriever = hybrid.model_copy(update={"mode": mode})
    xinhua = retriever.search("Wang Lei", 1).passages[0].chunk.article_id
    hits = retriever.search("Wang Lei", 4, exclude_articles={xinhua}).passages
    assert xinhua not in {h.chunk.article_id for h in hits}


def test_keyword_search_finds_names_that_embeddings_miss(hybrid: PassageRetriever) -> None:
    question = "Who is Manon Le Blanc?"
    keyword_hits = hybrid.model_copy(update={"mode": "bm25"}).search(question, 1).passages
    assert keyword_hits[0].chunk.title == XINHUA_TITLE
    assert "Manon Le Blanc" in keyword_hits[0].chunk.text


def candidate(article: str, n: int) -> RetrievedChunk:
    return RetrievedChunk(Chunk(f"{article}{n}", article, n, "text", 0, 4, "T"), 1.0 / n, n, 0.5)


@pytest.mark.parametrize(
    ("limit", "k", "expected"),
    [
        (0, 3, ["a1", "a2", "b3"]),
        (1, 3, ["a1", "b3", "c5"]),
        (2, 4, ["a1", "a2", "b3", "b4"]),
        (1, 5, ["a1", "b3", "c5"]),  # fewer articles than k
    ],
)
def test_limit_per_article(limit: int, k: int, expected: list[str]) -> None:
    ranked = [candidate("a", 1), candidate("a", 2), candidate("b", 3), candidate("b", 4)]
    ranked += [candidate("c", 5), candidate("a", 6)]
    assert [c.chunk.id for c in limit_per_article(ranked, limit, k)] == expected


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_limit_per_article_spreads_passages_over_articles(
    hybrid: PassageRetriever, mode: str
) -> None:
    limited = hybrid.model_copy(update={"mode": mode, "max_per_article": 1})
    hits = limited.search("Who is Wang Lei?", 4).passages
    assert len(hits) == 4
    assert len({h.chunk.article_id for h in hits}) == 4
    assert hits[0].chunk.title == XINHUA_TITLE

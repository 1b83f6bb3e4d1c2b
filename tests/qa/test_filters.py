"""Retrieval filters (outlet, publication dates) on the real sample index, in every mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embeddings import Embedder
from index.reader import Store, open_store
from index.types import Chunk
from qa import QAChain
from qa.config import RetrieverMode
from qa.retrieval import UNKNOWN_SOURCE, PassageFilter, PassageRetriever
from tests.conftest import XINHUA_TITLE

WIKIPEDIA = "Wikipedia (SQuAD v1.1 dev)"


def chunk(source: str | None, published: str | None) -> Chunk:
    return Chunk("c", "a", 0, "text", 0, 4, "t", source, None, published)


def test_filter_allows_by_outlet_and_inclusive_dates() -> None:
    march = PassageFilter(published_from="2024-03-01", published_to="2024-03-31")
    assert march.allows(chunk("X", "2024-03-01"))
    assert march.allows(chunk("X", "2024-03-31"))
    assert not march.allows(chunk("X", "2024-04-01"))
    assert not march.allows(chunk("X", None))  # unknown date: left out once dates are set
    xinhua = PassageFilter(frozenset({"Xinhua"}))
    assert xinhua.allows(chunk("Xinhua", None))
    assert not xinhua.allows(chunk("Reuters", "2024-03-02"))
    assert PassageFilter(frozenset({UNKNOWN_SOURCE})).allows(chunk(None, None))
    assert not PassageFilter().active
    assert PassageFilter().allows(chunk(None, None))


@pytest.fixture(scope="module")
def store(sample_index: Path) -> Store:
    return open_store(sample_index, "articles")


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_keeps_only_what_the_filter_allows(
    store: Store, embedder: Embedder, mode: RetrieverMode
) -> None:
    keyword = store.keyword_index() if mode != "dense" else None
    retriever = PassageRetriever(embedder=embedder, store=store, keyword=keyword, mode=mode, k=4)
    question = "Who is Wang Lei?"
    wiki = retriever.search(question, filters=PassageFilter(frozenset({WIKIPEDIA}))).passages
    assert len(wiki) == 4
    assert {h.chunk.source for h in wiki} == {WIKIPEDIA}
    assert [h.rank for h in wiki] == [1, 2, 3, 4]
    dated = retriever.search(question, filters=PassageFilter(published_from="2024-01-01")).passages
    assert dated
    assert {h.chunk.title for h in dated} == {XINHUA_TITLE}
    assert (
        retriever.search(question, filters=PassageFilter(published_to="2023-12-31")).passages == ()
    )


def test_chain_answers_not_covered_outside_the_dates(smol_chain: QAChain) -> None:
    fast = QAChain(smol_chain.retriever, None, smol_chain.settings)
    inside = fast.invoke(
        {"question": "Who is Wang Lei?", "filters": PassageFilter(published_from="2024-03-19")}
    )
    assert inside.covered
    assert inside.citations[0].title == XINHUA_TITLE
    outside = fast.invoke(
        {"question": "Who is Wang Lei?", "filters": PassageFilter(published_to="2024-03-18")}
    )
    assert not outside.covered
    assert outside.retrieved == ()

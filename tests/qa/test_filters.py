"""Retrieval filters (outlet, publication dates) on the real sample index, in every mode."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from index import reader
from index.build import rebuild_index
from index.collection import where_clause
from index.embeddings import Embedder
from index.reader import Store, open_store
from index.types import Chunk, DayRange
from qa import QAChain, Settings
from qa.chain import build_retriever
from qa.config import RetrieverMode
from qa.errors import QuestionError
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


def test_where_clause_keeps_undated_chunks_only_under_an_as_of_cap() -> None:
    capped = PassageFilter(as_of="2024-03-20").days
    assert where_clause((), capped) == {
        "$and": [{"published_day": {"$gte": 0}}, {"published_day": {"$lte": 20240320}}]
    }
    window = PassageFilter(published_from="2024-03-13", as_of="2024-03-20").days
    assert window.lowest == 20240313
    assert window.last == 20240320
    until = PassageFilter(published_to="2024-03-31", as_of="2024-03-20").days
    assert until.lowest == 1
    assert until.last == 20240320
    assert where_clause(("a",), None) == {"article_id": {"$nin": ["a"]}}
    assert where_clause((), None) is None


@pytest.fixture(scope="module")
def crowded_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Store:
    """150 articles about a harbour storm from 2023, closer to the question than the five
    articles of 2024-03-19 that are also about it: a narrow date window on a crowded index."""
    root = tmp_path_factory.mktemp("crowded")
    lines = []
    for n in range(150):
        lines.append(
            {
                "id": f"old-{n}",
                "title": f"Harbour storm update {n}",
                "text": f"The storm closed the harbour again, report {n}. Ferries stayed in port "
                f"while the storm hit the harbour for day {n}.",
                "published": f"2023-{1 + n % 12:02d}-{1 + n % 28:02d}",
                "source": "Old Wire",
            }
        )
    for n in range(5):
        lines.append(
            {
                "id": f"new-{n}",
                "title": f"Council meeting {n}",
                "text": f"The council discussed budgets; ferry crews mentioned weather at the "
                f"harbour ({n}). Members also voted on parking.",
                "published": "2024-03-19",
                "source": "New Wire",
            }
        )
    source = root / "articles.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    settings = Settings(index_dir=root / "index")
    store, _ = rebuild_index(settings, embedder, source)
    return store


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_narrow_window_on_a_crowded_index_still_gives_k_passages(
    crowded_index: Store, embedder: Embedder, mode: RetrieverMode
) -> None:
    assert crowded_index.days_indexed
    assert crowded_index.latest_day == 20240319  # a later as-of cap needs no filter
    keyword = crowded_index.keyword_index() if mode != "dense" else None
    retriever = PassageRetriever(
        embedder=embedder, store=crowded_index, keyword=keyword, mode=mode, k=4
    )
    day = PassageFilter(published_from="2024-03-19", published_to="2024-03-19")
    found = retriever.search("Did the storm close the harbour?", filters=day).passages
    assert len(found) == 4
    assert {h.chunk.published for h in found} == {"2024-03-19"}
    before = PassageFilter(as_of="2024-03-18")
    older = retriever.search("Did the storm close the harbour?", filters=before).passages
    assert len(older) == 4
    assert all(h.chunk.published and h.chunk.published < "2024-03-18" for h in older)


def test_a_wide_window_searched_deeper_finds_what_the_id_filter_finds(
    crowded_index: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector = embedder.embed_query("Did the storm close the harbour?")
    windows = [DayRange(20230301, 20230331), DayRange(None, 20240318), DayRange(20240319, None)]
    by_ids = [crowded_index.query(vector, 6, days=days) for days in windows]
    monkeypatch.setattr(reader, "ID_FILTER_LIMIT", 0)  # every window as a wide one
    deeper = [crowded_index.query(vector, 6, days=days) for days in windows]
    assert [[h.chunk.id for h in hits] for hits in deeper] == [
        [h.chunk.id for h in hits] for hits in by_ids
    ]
    assert [len(hits) for hits in deeper] == [6, 6, 5]  # the 2024 day holds five


def test_nothing_published_after_the_as_of_date_is_used(smol_chain: QAChain) -> None:
    fast = QAChain(smol_chain.retriever, None, smol_chain.settings)
    later = fast.invoke({"question": "Who is Wang Lei?", "as_of": "2024-03-18"})
    assert XINHUA_TITLE not in {h.chunk.title for h in later.retrieved}
    assert later.as_of == "2024-03-18"
    on_the_day = fast.invoke({"question": "Who is Wang Lei?", "as_of": "2024-03-19"})
    assert on_the_day.citations
    assert on_the_day.citations[0].title == XINHUA_TITLE


def test_this_week_is_read_against_the_as_of_date(smol_chain: QAChain) -> None:
    fast = QAChain(smol_chain.retriever, None, smol_chain.settings)
    week = fast.invoke({"question": "What happened this week?", "as_of": "2024-03-20"})
    assert week.covered
    assert week.shape == "digest"
    assert {c.title for c in week.citations} == {XINHUA_TITLE}
    assert week.time_scope is not None
    assert "2024-03-13 to 2024-03-20" in week.time_scope
    # A month later, that week holds no article: "not covered", not old news.
    later = fast.invoke({"question": "What happened this week?", "as_of": "2024-04-20"})
    assert not later.covered
    assert later.retrieved == ()
    # Undated articles (the Wikipedia sample) still answer questions without a time.
    plain = fast.invoke({"question": "Who won Super Bowl 50?", "as_of": "2024-03-20"})
    assert plain.covered


def test_an_unreadable_as_of_date_is_refused_with_an_example(smol_chain: QAChain) -> None:
    fast = QAChain(smol_chain.retriever, None, smol_chain.settings)
    with pytest.raises(QuestionError, match="YYYY-MM-DD"):
        fast.invoke({"question": "Who is Wang Lei?", "as_of": "soon"})


@pytest.fixture(scope="module")
def mayors(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """Three 2023 reports on Tallow Creek's mayor, worded like the question, and one of
    2024-03-10 on the new mayor, worded otherwise: the archive ranks the old ones first."""
    root = tmp_path_factory.mktemp("mayors")
    lines = [
        {
            "id": f"old-{n}",
            "title": f"Mayor of Tallow Creek {n}",
            "text": f"Anna Berg is the mayor of Tallow Creek, the town council said in report {n}. "
            "The mayor of Tallow Creek opened the library.",
            "published": f"2023-0{n + 1}-15",
        }
        for n in range(3)
    ]
    lines.append(
        {
            "id": "new",
            "title": "Tallow Creek swears in Jonas Holm",
            "text": "Jonas Holm was sworn in as Tallow Creek's new mayor on Sunday, replacing "
            "Anna Berg after the election.",
            "published": "2024-03-10",
        }
    )
    source = root / "articles.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    settings = Settings(index_dir=root / "index", llm_backend="extractive", top_k=2)
    rebuild_index(settings, embedder, source)
    return settings


def test_a_question_naming_no_time_gets_the_newest_news_first(mayors: Settings) -> None:
    question = {"question": "Who is the mayor of Tallow Creek?", "as_of": "2024-03-20"}
    whole = QAChain(
        build_retriever(mayors), None, mayors.model_copy(update={"newest_first_days": 0})
    )
    assert {h.chunk.article_id for h in whole.invoke(question).retrieved} <= {
        "old-0",
        "old-1",
        "old-2",
    }
    chain = QAChain(build_retriever(mayors), None, mayors)
    newest = chain.invoke(question)
    assert [h.chunk.article_id for h in newest.retrieved] == ["new"]
    assert newest.time_scope == "articles published 2024-02-18 to 2024-03-20 (newest news first)"
    assert "Jonas Holm" in newest.text
    # Asked long after the newest article, only the whole archive is searched.
    assert chain.newest_window(dt.date(2024, 3, 20)) is not None
    assert chain.newest_window(dt.date(2025, 1, 1)) is None
    # Dates of the caller's own that leave nothing (a start after the end): "not covered".
    empty = PassageFilter(published_from="2024-03-19", published_to="2024-03-01")
    refused = chain.invoke({**question, "filters": empty})
    assert refused.retrieved == ()
    assert refused.refused == "gate"
    # Before the new mayor, the whole archive answers, and no time is said to be searched.
    earlier = chain.invoke({**question, "as_of": "2024-03-01"})
    assert earlier.retrieved
    assert earlier.time_scope is None
    assert "Anna Berg" in earlier.text

"""Retrieval: from a question to ranked passages, by meaning (dense), by keywords (BM25), or by
both fused with reciprocal rank fusion (hybrid)."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from index.embeddings import Embedder
from index.keyword import KeywordIndex
from index.reader import Store
from index.types import Chunk, DayRange, day_number
from qa.config import RetrieverMode
from qa.types import Retrieval, RetrievedChunk

RRF_K = 60  # the usual constant of reciprocal rank fusion
FUSION_DEPTH = 20  # candidates taken from each list before fusing
# With a filter, candidates taken from each list before the filter is applied (dates are only
# known per chunk, so filtered searches look deeper and keep the passages that pass).
FILTER_DEPTH = 100
UNKNOWN_SOURCE = "(unknown)"  # the outlet of articles that name none (as `IndexStats` lists it)


@dataclass(frozen=True, slots=True)
class PassageFilter:
    """Which passages a search may return: from one of `sources` (outlets; empty: any),
    published between `published_from` and `published_to` (ISO dates, both included; None: no
    bound; when one is set, passages of unknown date are left out), and never after `as_of`
    (the question's present; passages of unknown date pass it)."""

    sources: frozenset[str] = frozenset()
    published_from: str | None = None
    published_to: str | None = None
    as_of: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.sources) or self.days.bounded

    @property
    def days(self) -> DayRange:
        """The publication dates as the index's day range."""
        first = day_number(self.published_from)
        lasts = [d for d in (day_number(self.published_to), day_number(self.as_of)) if d]
        undated = first is None and day_number(self.published_to) is None
        return DayRange(first, min(lasts) if lasts else None, undated)

    def allows(self, chunk: Chunk) -> bool:
        if self.sources and (chunk.source or UNKNOWN_SOURCE) not in self.sources:
            return False
        return self.days.allows(day_number(chunk.published))


class PassageRetriever(BaseRetriever):
    """A LangChain retriever over the citeqa index; `search` gives typed, ranked passages."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    embedder: Embedder
    store: Store
    keyword: KeywordIndex | None = None
    mode: RetrieverMode = "dense"
    k: int = 4
    max_per_article: int = 0  # 0: no limit

    def search(
        self,
        question: str,
        k: int | None = None,
        exclude_articles: Collection[str] = (),
        filters: PassageFilter | None = None,
        per_article: int | None = None,
    ) -> Retrieval:
        """The best `k` passages for `question`, best first, leaving out `exclude_articles`
        and passages that `filters` does not allow, at most `per_article` from one article
        (default: the retriever's own limit); with the question's vector and the seconds each
        stage took (`embed`, `search`). Follows a newly published build first, once."""
        k = k or self.k
        limit = self.max_per_article if per_article is None else per_article
        self.store.refresh()  # once per question: the queries below read the same build
        started = time.perf_counter()
        vector = self.embedder.embed_query(question)
        embedded = time.perf_counter()
        days = filters.days if filters is not None else DayRange()
        latest = self.store.latest_day
        if days.undated and days.last is not None and latest is not None and days.last >= latest:
            days = DayRange()  # an as-of cap after the newest article leaves nothing out
        # Dates are filtered inside the index when its build knows them. Outlets are filtered
        # after the search, which then looks deeper to keep k passages; so are the dates of
        # builds written before days were indexed (an as-of cap alone at the usual depth).
        inside = days.bounded and self.days_indexed
        windowed = days.bounded and not inside and not days.undated
        after = filters is not None and (bool(filters.sources) or (days.bounded and not inside))
        depth = max(FUSION_DEPTH, k) if limit else k
        if filters is not None and (filters.sources or windowed):
            depth = max(FILTER_DEPTH, k)
        searched = days if inside else None
        if self.mode == "dense":
            found = self.store.query(vector, depth, exclude_articles, days=searched, follow=False)
        else:
            found = self._keyword_or_hybrid(question, vector, depth, exclude_articles, searched)
        if after:
            assert filters is not None
            found = [hit for hit in found if filters.allows(hit.chunk)]
        kept = limit_per_article(found, limit, k)
        passages = tuple(replace(hit, rank=rank) for rank, hit in enumerate(kept, start=1))
        timings = {"embed": embedded - started, "search": time.perf_counter() - embedded}
        return Retrieval(passages, tuple(vector), timings)

    @property
    def days_indexed(self) -> bool:
        """Whether the index (and its keyword index, when used) can filter by day itself."""
        if not self.store.days_indexed:
            return False
        return self.mode == "dense" or (self.keyword is not None and self.keyword.days_indexed)

    def _keyword_or_hybrid(
        self,
        question: str,
        vector: Sequence[float],
        k: int,
        exclude: Collection[str],
        days: DayRange | None = None,
    ) -> list[RetrievedChunk]:
        """The best `k` candidates by keywords or by fusion, with their cosine similarity."""
        if self.keyword is None:
            raise ValueError(f"The {self.mode!r} retriever needs the keyword index.")
        depth = max(FUSION_DEPTH, k)
        keyword_ids = [h.chunk_id for h in self.keyword.search(question, depth, exclude, days)]
        if self.mode == "bm25":
            ranked = [(chunk_id, 1.0 / rank) for rank, chunk_id in enumerate(keyword_ids, 1)]
            dense_hits = {}
        else:
            dense = self.store.query(vector, depth, exclude, days=days, follow=False)
            dense_hits = {d.chunk.id: (d.chunk, d.similarity) for d in dense}
            ranked = fuse_rankings([[d.chunk.id for d in dense], keyword_ids])
        top = ranked[:k]
        missing = [chunk_id for chunk_id, _ in top if chunk_id not in dense_hits]
        fetched = self.store.get(missing, follow=False)
        query = np.asarray(vector, dtype=np.float32)
        candidates: list[RetrievedChunk] = []
        for chunk_id, score in top:
            if chunk_id in dense_hits:
                chunk, similarity = dense_hits[chunk_id]
            elif chunk_id in fetched:
                chunk, chunk_vector = fetched[chunk_id]
                similarity = float(np.dot(query, np.asarray(chunk_vector, dtype=np.float32)))
            else:  # the keyword index knows a chunk the vector index lost
                continue
            candidates.append(RetrievedChunk(chunk, score, len(candidates) + 1, similarity))
        return candidates

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        # `retriever.invoke(query, k=2)`: LangChain passes invoke's keywords on to here.
        return [to_document(hit) for hit in self.search(query, k).passages]


def limit_per_article(
    candidates: Sequence[RetrievedChunk], limit: int, k: int
) -> list[RetrievedChunk]:
    """The first `k` candidates, taking at most `limit` from one article (0: no limit)."""
    kept: list[RetrievedChunk] = []
    per_article: dict[str, int] = {}
    for candidate in candidates:
        article = candidate.chunk.article_id
        if limit and per_article.get(article, 0) >= limit:
            continue
        per_article[article] = per_article.get(article, 0) + 1
        kept.append(candidate)
        if len(kept) == k:
            break
    return kept


def fuse_rankings(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ids by the sum of 1 / (k + rank) over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def to_document(hit: RetrievedChunk) -> Document:
    """A LangChain `Document` for a retrieved passage, with its provenance in the metadata."""
    chunk: Chunk = hit.chunk
    metadata: dict[str, Any] = {
        "chunk_id": chunk.id,
        "article_id": chunk.article_id,
        "title": chunk.title,
        "source": chunk.source,
        "url": chunk.url,
        "published": chunk.published,
        "start": chunk.start,
        "end": chunk.end,
        "score": hit.score,
        "similarity": hit.similarity,
        "rank": hit.rank,
    }
    return Document(page_content=chunk.text, metadata=metadata, id=chunk.id)

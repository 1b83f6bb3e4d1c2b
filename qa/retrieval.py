"""Retrieval: from a question to ranked passages of the index (dense search for now)."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from index.embeddings import Embedder
from index.store import Store
from qa.types import RetrievedChunk


class PassageRetriever(BaseRetriever):
    """A LangChain retriever over the citeqa index; `search` gives typed, scored passages."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    embedder: Embedder
    store: Store
    k: int = 4

    def search(
        self, question: str, k: int | None = None, exclude_articles: Collection[str] = ()
    ) -> list[RetrievedChunk]:
        """The best `k` passages for `question`, best first, leaving out `exclude_articles`."""
        return self.timed_search(question, k, exclude_articles)[0]

    def timed_search(
        self, question: str, k: int | None = None, exclude_articles: Collection[str] = ()
    ) -> tuple[list[RetrievedChunk], dict[str, float]]:
        """`search`, with the seconds spent in each stage (`embed`, `search`)."""
        started = time.perf_counter()
        vector = self.embedder.embed_query(question)
        embedded = time.perf_counter()
        found = self.store.query(vector, k or self.k, exclude_articles)
        timings = {"embed": embedded - started, "search": time.perf_counter() - embedded}
        hits = [RetrievedChunk(f.chunk, f.score, rank) for rank, f in enumerate(found, start=1)]
        return hits, timings

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(hit) for hit in self.search(query)]


def to_document(hit: RetrievedChunk) -> Document:
    """A LangChain `Document` for a retrieved passage, with its provenance in the metadata."""
    chunk = hit.chunk
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
        "rank": hit.rank,
    }
    return Document(page_content=chunk.text, metadata=metadata, id=chunk.id)

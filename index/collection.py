"""Reading a build's Chroma collection: every record a page at a time, and similarity queries."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from index.errors import CiteqaIndexError
from index.records import chunk_from_record
from index.stored import RetrievedChunk

if TYPE_CHECKING:
    from index.backends import ChromaCollection, Where

PAGE = 1000  # records read or written per Chroma call


def iterate_metadata(collection: ChromaCollection) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record's id and metadata, a page at a time."""
    for chunk_id, _, meta in iterate_records(collection, with_documents=False):
        yield chunk_id, meta


def iterate_records(
    collection: ChromaCollection, with_documents: bool
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every record's id, text (empty unless asked for) and metadata, a page at a time."""
    offset = 0
    include: list[Any] = ["metadatas", "documents"] if with_documents else ["metadatas"]
    while True:
        found = collection.get(limit=PAGE, offset=offset, include=include)
        documents = found["documents"] or [""] * len(found["ids"])
        for i, d, m in zip(found["ids"], documents, found["metadatas"] or [], strict=True):
            yield i, d or "", dict(m or {})
        if len(found["ids"]) < PAGE:
            return
        offset += PAGE


def query_collection(
    collection: ChromaCollection,
    vector: Sequence[float],
    k: int,
    exclude_articles: Collection[str] = (),
) -> list[RetrievedChunk]:
    """The `k` records closest to `vector`, closest first (ranked from 1, scored by cosine
    similarity), leaving out `exclude_articles`."""
    where = (
        cast("Where", {"article_id": {"$nin": sorted(exclude_articles)}})
        if exclude_articles
        else None
    )
    try:
        result = collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
    except Exception as e:  # chromadb raises many unrelated types
        raise CiteqaIndexError(f"Searching the index failed: {e}") from e
    ids = result["ids"][0]
    documents = (result["documents"] or [[]])[0]
    metadatas = (result["metadatas"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    rows = zip(ids, documents, metadatas, distances, strict=True)
    return [
        RetrievedChunk(chunk_from_record(i, d or "", dict(m or {})), 1.0 - x, rank, 1.0 - x)
        for rank, (i, d, m, x) in enumerate(rows, start=1)
    ]

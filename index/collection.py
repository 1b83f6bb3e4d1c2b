"""Reading a build's Chroma collection: every record a page at a time, and similarity queries."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from index.errors import CiteqaIndexError
from index.records import PUBLISHED_DAY, chunk_from_record
from index.stored import RetrievedChunk
from index.types import DayRange
from index.vectors import closest

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
    days: DayRange | None = None,
    within: Sequence[str] | None = None,
) -> list[RetrievedChunk]:
    """The `k` records closest to `vector`, closest first (ranked from 1, scored by cosine
    similarity), leaving out `exclude_articles` and, when `days` is bounded, records published
    outside it; `within`, the ids of the records published in `days` when the caller knows them,
    is the fast way (Chroma's `where` on a number scans every record's metadata). Either way
    the filter applies before ranking, so a narrow range still gives `k` records."""
    if within is not None and not within:
        return []
    where = where_clause(exclude_articles, None if within is not None else days)
    try:
        result = collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=cast("Where", where),
            ids=list(within) if within is not None else None,
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


def exact_query(
    collection: ChromaCollection,
    vector: Sequence[float],
    k: int,
    within: Sequence[str],
    exclude_articles: Collection[str] = (),
) -> list[RetrievedChunk]:
    """The `k` records of `within` closest to `vector`, by exact cosine similarity over their
    stored vectors: for a few ids, far faster than Chroma's graph search filtered to them (which
    wanders the graph for the few allowed nodes: 96 ms for 3 to 60 ids of 150k, against 1 to 3 ms
    here), and exact. Only the vectors are read for all of them (45 µs each; their metadata would
    cost four times as much), the rest for the `k` kept."""
    if not within:
        return []
    include: list[Any] = ["embeddings", "metadatas"] if exclude_articles else ["embeddings"]
    try:
        found = collection.get(ids=list(within), include=include)
    except Exception as e:  # chromadb raises many unrelated types
        raise CiteqaIndexError(f"Searching the index failed: {e}") from e
    ids = list(found["ids"])
    if exclude_articles:
        metadatas = found["metadatas"] or []
        kept = [str((m or {}).get("article_id")) not in exclude_articles for m in metadatas]
    else:
        kept = [True] * len(ids)
    rows = [i for i, keep in enumerate(kept) if keep]
    if not rows or found["embeddings"] is None:
        return []
    best, similarity = closest(np.asarray(found["embeddings"], dtype=np.float32)[rows], vector, k)
    return fetch_hits(collection, [ids[rows[b]] for b in best.tolist()], similarity.tolist())


def fetch_hits(
    collection: ChromaCollection, chunk_ids: Sequence[str], scores: Sequence[float]
) -> list[RetrievedChunk]:
    """The records of `chunk_ids`, found with these `scores`, as hits ranked in that order."""
    if not chunk_ids:
        return []
    try:
        records = collection.get(ids=list(chunk_ids), include=["documents", "metadatas"])
    except Exception as e:  # chromadb raises many unrelated types
        raise CiteqaIndexError(f"Searching the index failed: {e}") from e
    by_id = {
        i: (d or "", dict(m or {}))
        for i, d, m in zip(
            records["ids"],
            records["documents"] or [""] * len(records["ids"]),
            records["metadatas"] or [],
            strict=True,
        )
    }
    hits = []
    for rank, (chunk_id, score) in enumerate(zip(chunk_ids, scores, strict=True), start=1):
        if chunk_id not in by_id:
            raise CiteqaIndexError(f"The index lacks chunk {chunk_id}, which a search found")
        text, meta = by_id[chunk_id]
        score = float(score)
        hits.append(RetrievedChunk(chunk_from_record(chunk_id, text, meta), score, rank, score))
    return hits


def where_clause(exclude_articles: Collection[str], days: DayRange | None) -> dict[str, Any] | None:
    """Chroma's `where` for a search: articles left out, publication days kept (None: all)."""
    conditions: list[dict[str, Any]] = []
    if exclude_articles:
        conditions.append({"article_id": {"$nin": sorted(exclude_articles)}})
    if days is not None and days.bounded:
        conditions.append({PUBLISHED_DAY: {"$gte": days.lowest}})
        if days.last is not None:
            conditions.append({PUBLISHED_DAY: {"$lte": days.last}})
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}

"""The Chroma store: open the persisted collection, write a complete new index, query it.

This is the only module that imports chromadb. Vectors always come from the project's own
embedding model; Chroma's default embedding function (which downloads a model) is never used.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from index.chunking import Chunk
from index.errors import CiteqaIndexError, IndexMismatchError, IndexNotBuiltError
from index.offline import enforce_offline

if TYPE_CHECKING:
    from chromadb import Where
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection as ChromaCollection

log = logging.getLogger(__name__)

_PREFIX = "citeqa:"
REBUILD_HINT = "python -m index rebuild"


@dataclass(frozen=True, slots=True)
class IndexFingerprint:
    """What an index was built with; an index is only usable with the same values."""

    embedding_model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    chunker_version: str
    embed_titles: bool = False

    def to_metadata(self) -> dict[str, str | int | bool]:
        return {
            f"{_PREFIX}embedding_model": self.embedding_model,
            f"{_PREFIX}dimension": self.dimension,
            f"{_PREFIX}chunk_tokens": self.chunk_tokens,
            f"{_PREFIX}chunk_overlap_tokens": self.chunk_overlap_tokens,
            f"{_PREFIX}chunker_version": self.chunker_version,
            f"{_PREFIX}embed_titles": int(self.embed_titles),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> IndexFingerprint | None:
        try:
            return cls(
                embedding_model=str(meta[f"{_PREFIX}embedding_model"]),
                dimension=int(meta[f"{_PREFIX}dimension"]),
                chunk_tokens=int(meta[f"{_PREFIX}chunk_tokens"]),
                chunk_overlap_tokens=int(meta[f"{_PREFIX}chunk_overlap_tokens"]),
                chunker_version=str(meta[f"{_PREFIX}chunker_version"]),
                embed_titles=bool(meta.get(f"{_PREFIX}embed_titles", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk found by a query, with its cosine similarity to the query (higher is closer)."""

    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What is in an index."""

    articles: int
    chunks: int
    fingerprint: IndexFingerprint
    built_at: str
    sources: tuple[tuple[str, int], ...]  # (outlet, articles), most first


class Store:
    """One Chroma collection of chunks, opened from a persistent directory."""

    def __init__(self, client: ClientAPI, collection: ChromaCollection) -> None:
        self._client = client
        self._collection = collection

    @property
    def fingerprint(self) -> IndexFingerprint:
        fingerprint = IndexFingerprint.from_metadata(dict(self._collection.metadata or {}))
        if fingerprint is None:
            raise IndexMismatchError(
                "The index has no build record (it was not made by citeqa or is damaged). "
                f"Rebuild it with: {REBUILD_HINT}"
            )
        return fingerprint

    def check(self, expected: IndexFingerprint) -> None:
        """Raise `IndexMismatchError` unless the index was built the way `expected` says."""
        actual = self.fingerprint
        if actual != expected:
            diffs = ", ".join(
                f"{name} {getattr(actual, name)!r} (settings say {getattr(expected, name)!r})"
                for name in IndexFingerprint.__slots__
                if getattr(actual, name) != getattr(expected, name)
            )
            raise IndexMismatchError(
                f"The index was built with different settings: {diffs}. "
                f"Rebuild it with: {REBUILD_HINT}"
            )

    def count(self) -> int:
        return int(self._collection.count())

    def query(
        self, vector: Sequence[float], k: int, exclude_articles: Collection[str] = ()
    ) -> list[ScoredChunk]:
        """The `k` chunks closest to `vector`, closest first, leaving out `exclude_articles`."""
        if k <= 0:
            return []
        where = (
            cast("Where", {"article_id": {"$nin": sorted(exclude_articles)}})
            if exclude_articles
            else None
        )
        try:
            result = self._collection.query(
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
        return [
            ScoredChunk(chunk_from_record(i, d or "", dict(m or {})), 1.0 - float(dist))
            for i, d, m, dist in zip(ids, documents, metadatas, distances, strict=True)
        ]

    def get(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, list[float]]]:
        """The chunks with these ids and their vectors (ids not in the index are left out)."""
        if not chunk_ids:
            return {}
        found = self._collection.get(
            ids=list(chunk_ids), include=["documents", "metadatas", "embeddings"]
        )
        documents = found["documents"] or []
        metadatas = found["metadatas"] or []
        vectors = found["embeddings"] if found["embeddings"] is not None else []
        return {
            i: (chunk_from_record(i, d or "", dict(m or {})), [float(x) for x in v])
            for i, d, m, v in zip(found["ids"], documents, metadatas, vectors, strict=True)
        }

    def stats(self) -> IndexStats:
        records = self._collection.get(include=["metadatas"])
        per_article: dict[str, str] = {}
        for meta in records["metadatas"] or []:
            per_article[str(meta["article_id"])] = str(meta.get("source") or "(unknown)")
        counts: dict[str, int] = {}
        for source in per_article.values():
            counts[source] = counts.get(source, 0) + 1
        return IndexStats(
            articles=len(per_article),
            chunks=len(records["ids"]),
            fingerprint=self.fingerprint,
            built_at=str((self._collection.metadata or {}).get(f"{_PREFIX}built_at", "")),
            sources=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        )


def open_client(index_dir: Path) -> ClientAPI:
    """A Chroma client on the persistent directory, with telemetry off."""
    enforce_offline()
    import chromadb
    from chromadb.config import Settings

    index_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(
        path=str(index_dir), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


def open_store(index_dir: Path, collection: str) -> Store:
    """Open a built index for reading; `IndexNotBuiltError` if there is none."""
    if not (index_dir / "chroma.sqlite3").exists():
        raise IndexNotBuiltError(
            f"No index at {index_dir}. Build it with: {REBUILD_HINT} --source articles/"
        )
    client = open_client(index_dir)
    try:
        found = client.get_collection(collection, embedding_function=None)
    except Exception as e:  # NotFoundError or a damaged database
        raise IndexNotBuiltError(
            f"The index at {index_dir} has no collection {collection!r}. "
            f"Build it with: {REBUILD_HINT}"
        ) from e
    return Store(client, found)


def write_index(
    index_dir: Path,
    collection: str,
    fingerprint: IndexFingerprint,
    batches: Iterable[tuple[Sequence[Chunk], Sequence[Sequence[float]]]],
) -> Store:
    """Write a complete new collection from `batches`, then swap it in for the old one.

    The old collection keeps answering until the new one is complete; a failure part-way leaves
    the old one untouched.
    """
    client = open_client(index_dir)
    staging = f"{collection}-staging"
    _delete_if_exists(client, staging)
    metadata: dict[str, Any] = {
        **fingerprint.to_metadata(),
        f"{_PREFIX}built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    new = client.create_collection(
        staging,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata=metadata,
    )
    try:
        for chunks, vectors in batches:
            if chunks:
                new.upsert(
                    ids=[c.id for c in chunks],
                    embeddings=np.asarray(vectors, dtype=np.float32),
                    documents=[c.text for c in chunks],
                    metadatas=[chunk_metadata(c) for c in chunks],
                )
    except BaseException:
        _delete_if_exists(client, staging)
        raise
    _delete_if_exists(client, collection)
    new.modify(name=collection)
    return Store(client, client.get_collection(collection, embedding_function=None))


def chunk_metadata(chunk: Chunk) -> dict[str, str | int]:
    """Chroma metadata for a chunk (Chroma stores no None values, so unknowns are left out)."""
    meta: dict[str, str | int] = {
        "article_id": chunk.article_id,
        "index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "title": chunk.title,
    }
    for key in ("source", "url", "published"):
        value = getattr(chunk, key)
        if value:
            meta[key] = value
    return meta


def chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        article_id=str(meta["article_id"]),
        index=int(meta.get("index", 0)),
        text=text,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", len(text))),
        title=str(meta.get("title", "")),
        source=_opt(meta.get("source")),
        url=_opt(meta.get("url")),
        published=_opt(meta.get("published")),
    )


def _opt(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _delete_if_exists(client: ClientAPI, name: str) -> None:
    if name in {c.name for c in client.list_collections()}:
        client.delete_collection(name)

"""What the store hands out: chunks a query found, chunks as a build holds them, an index's stats.

Plain values; nothing here knows Chroma.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from index.manifest import IndexFingerprint
    from index.types import Chunk


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    """A passage found for a question, the one shape a hit has from the index to the answer:
    `rank` 1 is the best. `score` is what the retriever ranked by; `similarity` is the passage's
    cosine similarity to the question, whatever the retriever."""

    chunk: Chunk
    score: float
    rank: int
    similarity: float


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as a build holds it: text, vector and metadata (copied as is between builds)."""

    chunk: Chunk
    vector: Sequence[float]
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What is in an index."""

    articles: int
    chunks: int
    fingerprint: IndexFingerprint
    built_at: str
    sources: tuple[tuple[str, int], ...]  # (outlet, articles), most first
    build_id: str = ""
    layers: int = 0  # earlier builds the live one reads beside its own chunks

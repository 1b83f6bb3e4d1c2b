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
class ScoredChunk:
    """A chunk found by a query, with its cosine similarity to the query (higher is closer)."""

    chunk: Chunk
    score: float


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

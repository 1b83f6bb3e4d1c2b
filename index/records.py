"""Chunks as records in a build's Chroma collection: their metadata, written and read back.

Chroma stores no None values and no lists of strings, so unknowns are left out and lists are JSON.
Nothing here imports Chroma.
"""

from __future__ import annotations

import json
from typing import Any

from index.stored import StoredChunk
from index.types import Chunk, day_number

# Chunk metadata beside `chunk_metadata`'s: what a manifest can be rebuilt from on another machine.
ARTICLE_HASH = "article_hash"
ARTICLE_ORIGIN = "article_origin"
# A chunk's publication day as the number YYYYMMDD (0: unknown), for date ranges searched inside
# the index.
PUBLISHED_DAY = "published_day"
# The build's own metadata, beside its fingerprint: when it was written, and whether every dated
# chunk carries `PUBLISHED_DAY` (builds written before it did are filtered after the search).
BUILT_AT = "citeqa:built_at"
DAYS_INDEXED = "citeqa:days_indexed"
LATEST_DAY = "citeqa:latest_day"  # the newest publication day in the build (YYYYMMDD; 0: none)
TEXTS_APART = "citeqa:texts_apart"  # the chunk texts are in the build's own file (index.texts)
# A server build's layers (`index.manifest.layers_to_json`), for a reader on another machine.
LAYERS = "citeqa:layers"


def record_metadata(chunk: Chunk, content_hash: str, origin: str) -> dict[str, str | int]:
    """A chunk's metadata in a build: `chunk_metadata` and the article's hash and origin."""
    return {**chunk_metadata(chunk), ARTICLE_HASH: content_hash, ARTICLE_ORIGIN: origin}


def reorigin(stored: StoredChunk, origin: str) -> StoredChunk:
    """A copied chunk whose article now comes from `origin` (a file renamed or moved), with its
    publication day (a build written before days were indexed lacks it)."""
    metadata = {**stored.metadata, ARTICLE_ORIGIN: origin}
    metadata[PUBLISHED_DAY] = day_number(stored.chunk.published) or 0
    if metadata == stored.metadata:
        return stored
    return StoredChunk(stored.chunk, stored.vector, metadata)


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
    meta[PUBLISHED_DAY] = day_number(chunk.published) or 0
    if chunk.other_sources:  # Chroma metadata holds no lists of strings here: a JSON list
        meta["other_sources"] = json.dumps(list(chunk.other_sources), ensure_ascii=False)
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
        source=text_or_none(meta.get("source")),
        url=text_or_none(meta.get("url")),
        published=text_or_none(meta.get("published")),
        other_sources=tuple(json.loads(str(meta["other_sources"])))
        if meta.get("other_sources")
        else (),
    )


def text_or_none(value: object) -> str | None:
    """A metadata value as text; None for a missing or empty one."""
    return str(value) if value not in (None, "") else None

"""Rebuilding the index from a folder or file of articles, with a report of what happened."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from index.articles import Article, Rejection, load_articles
from index.chunking import CHUNKER_VERSION, Chunk, chunk_article, searchable_text
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import CiteqaIndexError
from index.keyword import build_keyword_index, save_keyword_index
from index.progress import ProgressCallback
from index.store import IndexFingerprint, Store, write_index


@dataclass(frozen=True, slots=True)
class IndexReport:
    """The outcome of a rebuild."""

    articles_read: int
    rejected: tuple[Rejection, ...]
    chunks_written: int
    seconds: float


def fingerprint_for(settings: IndexSettings, embedder: Embedder) -> IndexFingerprint:
    """The fingerprint an index built with these settings and this model carries."""
    return IndexFingerprint(
        embedding_model=embedder.name,
        dimension=embedder.dimension,
        chunk_tokens=min(settings.chunk_tokens, embedder.max_tokens),
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        chunker_version=CHUNKER_VERSION,
        embed_titles=settings.embed_titles,
    )


def rebuild_index(
    settings: IndexSettings,
    embedder: Embedder,
    source: Path,
    progress: ProgressCallback | None = None,
) -> tuple[Store, IndexReport]:
    """Read, chunk and embed every article under `source` into a fresh index, then swap it in."""
    started = time.perf_counter()
    loaded = load_articles(source)
    if not loaded.articles:
        reasons = "; ".join(f"{r.origin}: {r.reason}" for r in loaded.rejected[:5])
        raise CiteqaIndexError(
            f"No articles could be read from {source}"
            + (f" ({reasons})" if reasons else "")
            + ". Point --source at a folder of .txt, .md, .html or .jsonl articles."
        )
    store, report = index_articles(settings, embedder, loaded.articles, progress)
    return store, replace(report, rejected=loaded.rejected, seconds=time.perf_counter() - started)


def index_articles(
    settings: IndexSettings,
    embedder: Embedder,
    articles: Sequence[Article],
    progress: ProgressCallback | None = None,
) -> tuple[Store, IndexReport]:
    """Chunk and embed `articles` into a fresh index, then swap it in for the old one."""
    started = time.perf_counter()
    fingerprint = fingerprint_for(settings, embedder)
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for article in articles:
        # With titles embedded, the title's word pieces come out of each chunk's budget.
        title_tokens = embedder.count_tokens(article.title) + 1 if settings.embed_titles else 0
        for chunk in chunk_article(
            article,
            max_tokens=max(32, fingerprint.chunk_tokens - title_tokens),
            overlap_tokens=settings.chunk_overlap_tokens,
            count_tokens=embedder.count_tokens,
        ):
            if chunk.id not in seen:  # the same article twice is indexed once
                seen.add(chunk.id)
                chunks.append(chunk)
    store = write_index(
        settings.index_dir,
        settings.collection,
        fingerprint,
        embed_batches(embedder, chunks, settings.embed_batch_size, settings.embed_titles, progress),
    )
    keyword = build_keyword_index(chunks, settings.embed_titles)
    save_keyword_index(keyword, settings.index_dir, settings.collection)
    report = IndexReport(
        articles_read=len(articles),
        rejected=(),
        chunks_written=len(chunks),
        seconds=time.perf_counter() - started,
    )
    return store, report


def embed_batches(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    batch_size: int,
    with_titles: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[tuple[Sequence[Chunk], list[list[float]]]]:
    """Yield `(chunks, vectors)` batch by batch, reporting progress after each."""
    for begin in range(0, len(chunks), batch_size):
        batch = chunks[begin : begin + batch_size]
        yield batch, embedder.embed_documents([searchable_text(c, with_titles) for c in batch])
        if progress is not None:
            progress(begin + len(batch), len(chunks))

"""The real Chroma index: build, query, fingerprint checks and a rebuild that fails part-way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index.build import fingerprint_for, rebuild_index
from index.chunking import Chunk
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import CiteqaIndexError, IndexMismatchError, IndexNotBuiltError
from index.store import open_store, write_index
from tests.conftest import XINHUA_TITLE


def test_sample_index_holds_every_article(sample_index: Path) -> None:
    stats = open_store(sample_index, "articles").stats()
    assert stats.articles == 11
    assert stats.chunks > 100
    assert dict(stats.sources)["Xinhua"] == 1
    assert stats.fingerprint.embedding_model == "all-MiniLM-L6-v2"


def test_query_finds_the_article_about_the_question(sample_index: Path, embedder) -> None:
    store = open_store(sample_index, "articles")
    hits = store.query(embedder.embed_query("China-EU Cyber Taskforce meeting in Brussels"), 3)
    assert hits[0].chunk.title == XINHUA_TITLE
    assert hits[0].chunk.source == "Xinhua"
    assert hits[0].chunk.published == "2024-03-19"
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_missing_index_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(IndexNotBuiltError, match="python -m index rebuild"):
        open_store(tmp_path / "none", "articles")


def test_index_built_with_other_chunking_is_refused(sample_index: Path, embedder) -> None:
    store = open_store(sample_index, "articles")
    other = fingerprint_for(IndexSettings(index_dir=sample_index, chunk_tokens=120), embedder)
    with pytest.raises(IndexMismatchError, match=r"chunk_tokens 128 .*120.*python -m index"):
        store.check(other)
    store.check(fingerprint_for(IndexSettings(index_dir=sample_index), embedder))


def test_unreadable_article_is_reported_and_the_others_indexed(
    tmp_path: Path, corpus_dir: Path, embedder: Embedder
) -> None:
    (corpus_dir / "broken.txt").write_bytes(b"\xff\xfe\x00bad bytes\x81")
    settings = IndexSettings(index_dir=tmp_path / "idx")
    store, report = rebuild_index(settings, embedder, corpus_dir)
    assert report.articles_read == 2
    assert [Path(r.origin).name for r in report.rejected] == ["broken.txt"]
    assert store.stats().articles == 2


def test_rebuild_with_no_readable_article_is_an_error(tmp_path: Path, embedder) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.docx").write_bytes(b"PK")
    with pytest.raises(CiteqaIndexError, match="No articles could be read"):
        rebuild_index(IndexSettings(index_dir=tmp_path / "idx"), embedder, tmp_path / "src")


def test_failed_rebuild_leaves_the_old_index_answering(
    tmp_path: Path, corpus_dir: Path, embedder: Embedder
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx")
    old, _ = rebuild_index(settings, embedder, corpus_dir)
    before = old.count()
    fingerprint = fingerprint_for(settings, embedder)

    def failing_batches() -> Iterator[tuple[list[Chunk], list[list[float]]]]:
        yield [], []
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_index(settings.index_dir, settings.collection, fingerprint, failing_batches())
    reopened = open_store(settings.index_dir, settings.collection)
    assert reopened.count() == before
    hits = reopened.query(embedder.embed_query("Who is Wang Lei?"), 1)
    assert hits[0].chunk.title == XINHUA_TITLE


def test_titles_embedded_with_chunks_are_part_of_the_fingerprint(
    tmp_path: Path, corpus_dir: Path, embedder: Embedder
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx", embed_titles=True)
    store, _ = rebuild_index(settings, embedder, corpus_dir)
    assert store.fingerprint.embed_titles
    tokenizer_limit = settings.chunk_tokens
    for hit in store.query(embedder.embed_query("Wang Lei"), 5):
        assert embedder.count_tokens(f"{hit.chunk.title}\n{hit.chunk.text}") <= tokenizer_limit
    with pytest.raises(IndexMismatchError, match="embed_titles True"):
        store.check(fingerprint_for(IndexSettings(index_dir=settings.index_dir), embedder))

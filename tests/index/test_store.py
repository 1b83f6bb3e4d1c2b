"""The real Chroma index: build, query, fingerprint checks, a build that fails part-way, and
damaged files found at start-up, each with the command that fixes it."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from index.build import rebuild_index, sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import (
    CiteqaIndexError,
    IndexDamagedError,
    IndexMismatchError,
    IndexNotBuiltError,
)
from index.fingerprint import fingerprint_for
from index.layout import IndexLayout, list_builds, read_pointer
from index.reader import open_store
from tests.conftest import XINHUA_TITLE
from tests.index.conftest import CountingEmbedder, layout_of


def test_sample_index_holds_every_article(sample_index: Path) -> None:
    store = open_store(sample_index, "articles")
    stats = store.stats()
    assert stats.articles == 11
    assert stats.chunks > 100
    assert dict(stats.sources)["Xinhua"] == 1
    assert stats.fingerprint.embedding_model == "all-MiniLM-L6-v2"
    assert stats.build_id == read_pointer(IndexLayout(sample_index, "articles"))
    store.close()


def test_query_finds_the_article_about_the_question(sample_index: Path, embedder) -> None:
    store = open_store(sample_index, "articles")
    hits = store.query(embedder.embed_query("China-EU Cyber Taskforce meeting in Brussels"), 3)
    assert hits[0].chunk.title == XINHUA_TITLE
    assert hits[0].chunk.source == "Xinhua"
    assert hits[0].chunk.published == "2024-03-19"
    assert hits[0].score >= hits[1].score >= hits[2].score
    store.close()


def test_missing_index_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(IndexNotBuiltError, match="python -m index rebuild"):
        open_store(tmp_path / "none", "articles")


def test_index_built_with_other_chunking_is_refused(sample_index: Path, embedder) -> None:
    store = open_store(sample_index, "articles")
    other = fingerprint_for(IndexSettings(index_dir=sample_index, chunk_tokens=120), embedder)
    with pytest.raises(IndexMismatchError, match=r"chunk_tokens 128 .*120.*python -m index"):
        store.check(other)
    store.check(fingerprint_for(IndexSettings(index_dir=sample_index), embedder))
    store.close()


def test_store_modes_build_and_answer_alike(
    index_settings: IndexSettings, small_corpus: Path, embedder: Embedder
) -> None:
    store, report = rebuild_index(index_settings, embedder, small_corpus)
    try:
        store.check(fingerprint_for(index_settings, embedder))
        stats = store.stats()
        assert (stats.articles, stats.chunks, stats.build_id) == (5, 5, report.build_id)
        assert dict(stats.sources)["Alpine Wire"] == 2
        hits = store.query(embedder.embed_query("drones measured the glacier"), 2)
        assert hits[0].chunk.article_id == "wire-1"
        others = store.query(embedder.embed_query("drones measured the glacier"), 5, {"wire-1"})
        assert "wire-1" not in {h.chunk.article_id for h in others}
        assert len(others) == 4
        assert store.keyword_index().search("Budapest chess", 1)[0].article_id == "wire-2"
    finally:
        store.close()


def test_unreadable_article_is_reported_and_the_others_indexed(
    tmp_path: Path, small_corpus: Path, embedder: Embedder
) -> None:
    (small_corpus / "broken.txt").write_bytes(b"\xff\xfe\x00bad bytes\x81")
    settings = IndexSettings(index_dir=tmp_path / "idx")
    store, report = rebuild_index(settings, embedder, small_corpus)
    assert report.articles == 5
    assert [Path(r.origin).name for r in report.rejected] == ["broken.txt"]
    assert store.stats().articles == 5
    store.close()


def test_rebuild_with_no_readable_article_is_an_error(tmp_path: Path, embedder) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.docx").write_bytes(b"PK")
    with pytest.raises(CiteqaIndexError, match="No articles could be read"):
        rebuild_index(IndexSettings(index_dir=tmp_path / "idx"), embedder, tmp_path / "src")


class FailingEmbedder(CountingEmbedder):
    """Fails after its first batch, as a full disk or a crash part-way would."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.embedded:
            raise RuntimeError("disk full")
        return super().embed_documents(texts)


def test_failed_rebuild_leaves_the_old_index_answering(
    tmp_path: Path, small_corpus: Path, embedder: Embedder
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx", embed_batch_size=2)
    old, first = rebuild_index(settings, embedder, small_corpus)
    old.close()
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild_index(settings, FailingEmbedder(embedder), small_corpus)
    assert list_builds(layout_of(settings)) == [first.build_id]
    reopened = open_store(settings.index_dir, settings.collection)
    assert reopened.build_id == first.build_id
    hits = reopened.query(embedder.embed_query("Which harbour reopened after the storm?"), 1)
    assert hits[0].chunk.title == "Lindholm harbour reopens after the storm"
    reopened.close()


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
    store.close()


# Damage done to a real index, and what opening it must then say.
def truncate_database(layout: IndexLayout, build: Path) -> None:
    database = build / "chroma" / "chroma.sqlite3"
    with database.open("r+b") as handle:
        handle.truncate(database.stat().st_size // 2)


def scramble_database(layout: IndexLayout, build: Path) -> None:
    database = build / "chroma" / "chroma.sqlite3"
    size = database.stat().st_size
    noise = random.Random(7).randbytes(size - 4096)
    with database.open("r+b") as handle:  # keep the header page, scramble every other one
        handle.seek(4096)
        handle.write(noise)


def remove_keyword_index(layout: IndexLayout, build: Path) -> None:
    shutil.rmtree(build / "keyword")


def damage_keyword_index(layout: IndexLayout, build: Path) -> None:
    target = build / "keyword" / "data.csc.index.npy"
    target.write_bytes(target.read_bytes()[:20])


def remove_texts(layout: IndexLayout, build: Path) -> None:
    (build / "texts.sqlite3").unlink()


def truncate_texts(layout: IndexLayout, build: Path) -> None:
    texts = build / "texts.sqlite3"
    with texts.open("r+b") as handle:
        handle.truncate(texts.stat().st_size // 2)


def remove_build(layout: IndexLayout, build: Path) -> None:
    shutil.rmtree(build)


def damage_pointer(layout: IndexLayout, build: Path) -> None:
    layout.pointer.write_text('{"build": ', encoding="utf-8")


def remove_manifest(layout: IndexLayout, build: Path) -> None:
    (build / "manifest.json").unlink()


def damage_manifest(layout: IndexLayout, build: Path) -> None:
    path = build / "manifest.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record["articles"].popitem()  # the record and the database no longer agree
    path.write_text(json.dumps(record), encoding="utf-8")


DAMAGE: list[tuple[Callable[[IndexLayout, Path], None], str]] = [
    (truncate_database, r"database .* is truncated"),
    (scramble_database, r"build .* (damaged|cannot be opened)"),
    (remove_keyword_index, r"keyword index at .* is missing"),
    (damage_keyword_index, r"keyword index at .* is damaged"),
    (remove_texts, r"texts.sqlite3 is missing"),
    (truncate_texts, r"texts.sqlite3 is truncated"),
    (remove_build, r"pointer names build .*, which is missing"),
    (damage_pointer, r"pointer .* is damaged"),
    (remove_manifest, r"build record .* is missing"),
    (damage_manifest, r"holds 5 chunks but its record lists 4"),
]


def open_for_hybrid(settings: IndexSettings) -> None:
    """What a reader does at start-up: open the vectors, then the keyword index."""
    open_store(settings.index_dir, settings.collection).keyword_index()


@pytest.mark.parametrize(("damage", "message"), DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_damage_is_found_at_start_up_and_a_rebuild_fixes_it(
    tmp_path: Path,
    small_corpus: Path,
    embedder: Embedder,
    damage: Callable[[IndexLayout, Path], None],
    message: str,
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx")
    report = sync_index(settings, embedder, small_corpus)
    layout = layout_of(settings)
    damage(layout, layout.build_dir(report.build_id))

    with pytest.raises(IndexDamagedError, match=message) as found:
        open_for_hybrid(settings)
    assert str(found.value).endswith("Rebuild the index with: python -m index rebuild")
    with pytest.raises(IndexDamagedError):  # a sync cannot build on a damaged index
        sync_index(settings, embedder, small_corpus)

    store, fixed = rebuild_index(settings, embedder, small_corpus)
    assert fixed.chunks_embedded == fixed.chunks_total == 5
    zeppelin = store.keyword_index().search("zeppelin", 1)[0].article_id
    assert store.query(embedder.embed_query("zeppelin museum"), 1)[0].chunk.article_id == zeppelin
    assert list_builds(layout) == [fixed.build_id]
    store.close()


def test_an_index_in_the_old_layout_asks_for_a_rebuild(tmp_path: Path) -> None:
    (tmp_path / "chroma.sqlite3").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(
        IndexNotBuiltError, match=r"made by an older citeqa.*python -m index rebuild"
    ):
        open_store(tmp_path, "articles")

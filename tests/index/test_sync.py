"""`sync` and `rebuild` on both store modes: what is embedded, reported, reused and written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from index.backends import SERVER_POLL_SECONDS, connect
from index.build import rebuild_index, sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import IndexMismatchError
from index.fingerprint import fingerprint_for
from index.layout import list_builds
from index.manifest import ArticleEntry
from index.plan import plan_changes
from index.reader import open_store
from index.sources import load_sources
from index.types import Article, content_id
from tests.index.conftest import CountingEmbedder, layout_of, write_article, write_records

LIGHTHOUSE = (
    "Skerryvore lighthouse gets a new keeper",
    "The Skerryvore lighthouse off Tiree has a resident keeper again, the first since 1954. "
    "She will guide the restoration of the tower's lamp.",
)


def no_model() -> Embedder:
    raise AssertionError("the embedding model was loaded although nothing had to be embedded")


def article_id(path: Path) -> str:
    return load_sources([path]).articles[0].id


def snapshot(settings: IndexSettings) -> tuple[dict[str, tuple[int, int]], object]:
    """Every index file's (mtime, size), the lock's files aside; and the server's collections."""
    root = layout_of(settings).root
    files = {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("writer.lock", "writer.json")
    }
    server: object = None
    if settings.chroma_url:
        client = connect(settings.chroma_url)
        server = sorted(
            (c.name, sorted((c.metadata or {}).items()), c.count())
            for c in client.list_collections()
            if c.name.startswith(settings.collection)
        )
    return files, server


def test_a_second_sync_of_an_unchanged_corpus_writes_nothing(
    index_settings: IndexSettings, small_corpus: Path, counting_embedder: CountingEmbedder
) -> None:
    first = sync_index(index_settings, counting_embedder, small_corpus)
    assert first.published
    assert (first.inputs, len(first.added), first.accepted) == (5, 5, 5)
    assert first.chunks_embedded == first.chunks_total == len(counting_embedder.embedded)
    before = snapshot(index_settings)

    again = sync_index(index_settings, no_model, small_corpus)

    assert not again.published
    assert again.build_id == first.build_id
    assert (len(again.unchanged), again.added, again.updated, again.removed) == (5, (), (), ())
    assert (again.chunks_embedded, again.chunks_copied) == (0, first.chunks_total)
    assert snapshot(index_settings) == before


def test_sync_embeds_new_and_changed_articles_and_drops_removed_ones(
    index_settings: IndexSettings,
    small_corpus: Path,
    counting_embedder: CountingEmbedder,
    embedder: Embedder,
) -> None:
    sync_index(index_settings, counting_embedder, small_corpus)
    old_harbour = article_id(small_corpus / "harbour.txt")
    zeppelin = article_id(small_corpus / "zeppelin.txt")
    orchard = article_id(small_corpus / "orchard.txt")
    # Edited in place (a new content-hash id, same file), deleted, added, and a record edited.
    write_article(
        small_corpus,
        "harbour.txt",
        "Lindholm harbour reopens after the storm",
        "The harbour of Lindholm reopened on Tuesday; the ferry timetable is unchanged.",
    )
    (small_corpus / "zeppelin.txt").unlink()
    write_article(small_corpus, "lighthouse.txt", *LIGHTHOUSE)
    records = load_sources([small_corpus / "wire.jsonl"]).articles
    wire2 = {"id": "wire-2", "title": records[1].title, "text": "The olympiad was postponed."}
    write_records(
        small_corpus / "wire.jsonl",
        [{"id": "wire-1", "title": records[0].title, "text": records[0].text,
          "source": "Alpine Wire"}, {**wire2, "source": "Alpine Wire"}],
    )  # fmt: skip
    counting_embedder.embedded.clear()

    report = sync_index(index_settings, counting_embedder, small_corpus)

    new_harbour = article_id(small_corpus / "harbour.txt")
    lighthouse = article_id(small_corpus / "lighthouse.txt")
    assert new_harbour != old_harbour
    assert sorted(report.updated) == sorted([new_harbour, "wire-2"])
    assert report.added == (lighthouse,)
    assert report.removed == (zeppelin,)
    assert sorted(report.unchanged) == sorted([orchard, "wire-1"])
    assert report.accepted + len(report.rejected) == report.inputs == 5
    assert sorted(counting_embedder.embedded) == sorted(
        [
            "The harbour of Lindholm reopened on Tuesday; the ferry timetable is unchanged.",
            LIGHTHOUSE[1],
            "The olympiad was postponed.",
        ]
    )
    assert (report.chunks_embedded, report.chunks_copied) == (3, 2)

    store = open_store(
        index_settings.index_dir, index_settings.collection, index_settings.chroma_url
    )
    try:
        assert store.stats().articles == 5
        assert store.count() == 5
        hit = store.query(embedder.embed_query("harbour of Lindholm reopened on Tuesday"), 1)[0]
        assert hit.chunk.article_id == new_harbour
        assert hit.chunk.text.endswith("the ferry timetable is unchanged.")
        keyword = store.keyword_index()
        assert keyword.search("zeppelin gondola", 5) == []
        assert [h.article_id for h in keyword.search("Skerryvore", 5)] == [lighthouse]
        assert [h.article_id for h in keyword.search("olympiad postponed", 1)] == ["wire-2"]
        assert set(store.manifest.articles) == {
            new_harbour,
            orchard,
            lighthouse,
            "wire-1",
            "wire-2",
        }
    finally:
        store.close()


def test_every_input_is_reported_once(
    index_settings: IndexSettings, small_corpus: Path, embedder: Embedder
) -> None:
    (small_corpus / "bad.json").write_text("{oops", encoding="utf-8")
    harbour = (small_corpus / "harbour.txt").read_text(encoding="utf-8")
    (small_corpus / "harbour-copy.txt").write_text(harbour, encoding="utf-8")
    write_records(
        small_corpus / "zz-more.jsonl",
        [{"id": "wire-1", "title": "Another story", "text": "Reusing an id is refused."}],
    )

    report = sync_index(index_settings, embedder, small_corpus)

    assert report.inputs == 8
    assert report.accepted + len(report.rejected) == report.inputs
    assert len(report.added) == 5
    assert [Path(d.origin).name for d in report.duplicates] in (
        ["harbour-copy.txt"],
        ["harbour.txt"],
    )
    reasons = {Path(r.origin).name.split(":")[0]: r.reason for r in report.rejected}
    assert set(reasons) == {"bad.json", "zz-more.jsonl"}
    assert "invalid JSON" in reasons["bad.json"]
    assert "'wire-1' is already used by" in reasons["zz-more.jsonl"]


def test_sync_refuses_an_index_built_with_other_settings(
    index_settings: IndexSettings, small_corpus: Path, embedder: Embedder
) -> None:
    sync_index(index_settings, embedder, small_corpus)
    before = snapshot(index_settings)
    other = index_settings.model_copy(update={"chunk_tokens": 100})
    with pytest.raises(
        IndexMismatchError, match=r"chunk_tokens 128 .*100.*python -m index rebuild"
    ):
        sync_index(other, embedder, small_corpus)
    assert snapshot(index_settings) == before


def test_rebuild_replaces_the_build_and_removes_the_old_one(
    index_settings: IndexSettings, small_corpus: Path, counting_embedder: CountingEmbedder
) -> None:
    store, first = rebuild_index(index_settings, counting_embedder, small_corpus)
    store.close()
    counting_embedder.embedded.clear()
    (small_corpus / "orchard.txt").unlink()

    store, second = rebuild_index(index_settings, counting_embedder, small_corpus)

    try:
        assert second.build_id != first.build_id
        assert store.build_id == second.build_id
        assert (len(second.unchanged), len(second.removed)) == (4, 1)
        assert second.chunks_embedded == second.chunks_total == len(counting_embedder.embedded) == 4
        assert list_builds(layout_of(index_settings)) == [second.build_id]
        if index_settings.chroma_url:
            names = {c.name for c in connect(index_settings.chroma_url).list_collections()}
            prefix = index_settings.collection
            assert {n for n in names if n.startswith(prefix)} == {
                f"{prefix}__{second.build_id}",
                f"{prefix}__live",
            }
    finally:
        store.close()


def test_a_reader_moves_to_each_new_build_without_reopening(
    index_settings: IndexSettings, small_corpus: Path, embedder: Embedder
) -> None:
    sync_index(index_settings, embedder, small_corpus)
    store = open_store(
        index_settings.index_dir, index_settings.collection, index_settings.chroma_url
    )
    try:
        store.check(fingerprint_for(index_settings, embedder))
        keyword = store.keyword_index()
        assert keyword.search("Skerryvore", 3) == []
        write_article(small_corpus, "lighthouse.txt", *LIGHTHOUSE)
        report = sync_index(index_settings, embedder, small_corpus)
        if index_settings.chroma_url:
            time.sleep(SERVER_POLL_SECONDS)  # a reader asks the server at most once a second

        hits = store.query(embedder.embed_query("a keeper for Skerryvore lighthouse"), 1)

        lighthouse = report.added[0]
        assert store.build_id == report.build_id
        assert hits[0].chunk.article_id == lighthouse
        assert [h.article_id for h in keyword.search("Skerryvore", 3)] == [lighthouse]
    finally:
        store.close()


def entry(content_hash: str, origin: str) -> ArticleEntry:
    return ArticleEntry(content_hash, origin, None, ("c",))


def test_plan_matches_by_id_then_by_origin() -> None:
    same = Article(id="a", title="A", text="one", origin="f.jsonl:1")
    edited = Article(id="b", title="B", text="two, edited", origin="f.jsonl:2")
    # A file edited in place: its id, made from its content, changed with it.
    edited_file = Article(
        id=content_id("C", "three, edited"), title="C", text="three, edited", origin="c.txt"
    )
    old_c = content_id("C", "three")
    # An id of its own on a line another id had: another article, not an edit of that one.
    other_record = Article(id="wire-2", title="E", text="five", origin="f.jsonl:3")
    brand_new = Article(id="d", title="D", text="four", origin="d.txt")
    previous = {
        "a": entry(same.content_hash, "f.jsonl:1"),
        "b": entry("old hash", "f.jsonl:2"),
        old_c: entry("old hash", "c.txt"),
        "wire-3": entry("old hash", "f.jsonl:3"),
        "gone": entry("x", "gone.txt"),
    }
    plan = plan_changes(previous, [same, edited, edited_file, other_record, brand_new])
    assert plan.unchanged == (same,)
    assert plan.updated == (("b", edited), (old_c, edited_file))
    assert plan.added == (other_record, brand_new)
    assert plan.removed == ("wire-3", "gone")
    assert plan.changed
    assert not plan_changes(previous, []).added
    assert not plan_changes({"a": previous["a"]}, [same]).changed

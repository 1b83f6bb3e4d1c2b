"""A sync writes only what changed: its build reads the unchanged chunks from earlier builds (its
layers), hides what was removed or changed there, and searches exactly as a full rebuild would;
layers are merged when there are too many or one is mostly hidden."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from index import backends
from index.backends import LocalBackend, ef_search_for
from index.build import rebuild_index, sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import IndexDamagedError
from index.keyword import build_keyword_index
from index.layering import MAX_LAYERS, plan_layers
from index.layout import list_builds
from index.manifest import (
    ArticleEntry,
    IndexFingerprint,
    Layer,
    Manifest,
    load_manifest,
    save_manifest,
)
from index.plan import IndexReport, plan_changes
from index.reader import Store, open_store
from index.types import Article, Chunk
from tests.index.conftest import (
    CountingEmbedder,
    builds_in_use,
    layout_of,
    write_article,
    write_reports,
)
from tests.support.factories import article_text

FINGERPRINT = IndexFingerprint("m", 3, 128, 16, "v1")
QUESTIONS = [
    "Which harbour reopened after the storm?",
    "Who will restore the lighthouse lamp?",
    "What did the council decide about the bridge?",
    "Report 3",
    "Report 11",
]


def build_id(n: int) -> str:
    return f"20261206T00000{n}-00000{n}"


def article(number: int, version: int = 0, origin: str | None = None) -> Article:
    text = f"Report {number} version {version}"
    return Article(
        f"a{number}v{version}", f"Report {number}", text, origin=origin or f"a{number}.txt"
    )


def manifest_of(
    build: str, articles: list[Article], layers: tuple[Layer, ...] = (), holder: str = ""
) -> Manifest:
    entries = {
        a.id: ArticleEntry(a.content_hash, a.origin, None, (f"{a.id}-0", f"{a.id}-1"), holder)
        for a in articles
    }
    return Manifest(build, "t", FINGERPRINT, entries, "", layers, days_indexed=True)


def test_an_added_article_is_layered_over_the_live_build() -> None:
    live = [article(n) for n in range(4)]
    previous = manifest_of(build_id(1), live)
    now = [*live, article(4)]
    plan = plan_changes(previous.articles, now)

    layering = plan_layers(previous, plan, {a.id: a.origin for a in now})

    assert layering is not None
    assert layering.layers == (Layer(build_id(1), 8),)
    assert layering.copy == ()
    assert layering.kept == {a.id: build_id(1) for a in live}


def test_changed_removed_and_moved_articles_are_hidden_where_they_are() -> None:
    live = [article(n) for n in range(6)]
    previous = manifest_of(build_id(1), live)
    moved = article(2, origin="renamed.txt")
    now = [live[0], article(1, version=1), moved, *live[4:]]  # 1 changed, 3 removed, 2 moved
    plan = plan_changes(previous.articles, now)

    layering = plan_layers(previous, plan, {a.id: a.origin for a in now})

    assert layering is not None
    hidden = {f"{a.id}-{i}" for a in (live[1], live[2], live[3]) for i in (0, 1)}
    assert layering.layers == (Layer(build_id(1), 12, frozenset(hidden)),)
    assert layering.copy == (moved.id,)  # its chunks are copied under its new origin
    assert set(layering.kept) == {live[0].id, live[4].id, live[5].id}


def test_too_many_layers_are_merged_into_the_new_build() -> None:
    base = [article(n) for n in range(10)]
    layers = [Layer(build_id(1), 20)]
    upper = []
    for n in range(2, MAX_LAYERS + 1):
        layers.append(Layer(build_id(n), 2))
        upper.append((article(10 + n), build_id(n)))
    live_build = layers.pop().build_id
    previous = manifest_of(live_build, base, tuple(layers), holder=build_id(1))
    entries = dict(previous.articles)
    for a, holder in upper:
        entries[a.id] = ArticleEntry(a.content_hash, a.origin, None, (f"{a.id}-0", f"{a.id}-1"),
                                     "" if holder == live_build else holder)  # fmt: skip
    previous = Manifest(live_build, "t", FINGERPRINT, entries, "", tuple(layers), True)
    now = [*base, *(a for a, _ in upper), article(99)]
    plan = plan_changes(previous.articles, now)

    layering = plan_layers(previous, plan, {a.id: a.origin for a in now})

    assert layering is not None
    assert layering.layers == (Layer(build_id(1), 20),)  # the base stays; the rest is copied
    assert set(layering.copy) == {a.id for a, _ in upper}
    assert set(layering.kept) == {a.id for a in base}


def test_a_mostly_hidden_base_means_a_complete_build() -> None:
    live = [article(n) for n in range(4)]
    previous = manifest_of(build_id(1), live)
    now = [live[0], *(article(n, version=1) for n in range(1, 4))]
    plan = plan_changes(previous.articles, now)

    assert plan_layers(previous, plan, {a.id: a.origin for a in now}) is None


def keyword_chunks(texts: list[str]) -> list[Chunk]:
    return [Chunk(f"c{i}", f"a{i}", 0, t, 0, len(t), "T") for i, t in enumerate(texts)]


def test_a_stacked_keyword_index_scores_as_one_index_over_the_same_chunks() -> None:
    rng = random.Random(7)
    texts = [article_text(rng, 3) for _ in range(40)]
    chunks = keyword_chunks(texts)
    whole = build_keyword_index(chunks)
    stacked = build_keyword_index(chunks[:30]).stacked(
        [(build_keyword_index(chunks[:30]), {"c3"}), (build_keyword_index(chunks[30:]), set())]
    )
    assert len(stacked) == 39
    assert stacked.weighed_chunks == 40  # the weights count the hidden chunk too, as one index
    assert stacked.term_weight("zzz") == whole.term_weight("zzz")
    assert "c3" not in stacked.chunk_ids
    for text in texts[:12]:
        query = " ".join(text.split()[:6])
        assert stacked.term_weight(query.split()[0].lower()) > 0
        found = [h.chunk_id for h in stacked.search(query, 5)]
        expected = [h.chunk_id for h in whole.search(query, 6) if h.chunk_id != "c3"][:5]
        assert "c3" not in found
        assert found[0] == expected[0]
        assert len(set(found) & set(expected)) >= 4


def test_one_layer_scores_exactly_as_bm25s() -> None:
    rng = random.Random(3)
    keyword = build_keyword_index(keyword_chunks([article_text(rng, 4) for _ in range(25)]))
    model = keyword._layers[0].model
    assert model is not None
    checked = 0
    for query in ["harbour storm ferry", "council bridge vote", "lamp keeper tower"]:
        hits = keyword.search(query, 5)
        tokens = [t for t in query.split() if t in model.vocab_dict]
        if not tokens:
            continue
        checked += 1
        scores = model.get_scores(tokens)
        assert [round(h.score, 4) for h in hits] == sorted(
            (round(float(s), 4) for s in scores if s > 0), reverse=True
        )[: len(hits)]
    assert checked


def synced_corpus(
    tmp_path: Path, embedder: Embedder, articles: int
) -> tuple[Path, IndexSettings, IndexReport]:
    """A folder of `articles` generated articles, synced into a fresh index: its report."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_reports(corpus, range(articles))
    settings = IndexSettings(index_dir=tmp_path / "idx")
    return corpus, settings, sync_index(settings, embedder, corpus)


def search_all(store: Store, embedder: Embedder) -> list[object]:
    """What every question finds: dense ids and rounded scores, keyword ids."""
    keyword = store.keyword_index()
    found: list[object] = []
    for question in QUESTIONS:
        dense = store.query(embedder.embed_query(question), 4)
        found.append([(h.chunk.id, round(h.similarity, 5)) for h in dense])
        found.append([h.chunk_id for h in keyword.search(question, 1)])
    return found


def test_syncs_write_only_the_change_and_search_as_a_rebuild_would(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_reports(corpus, range(12))
    write_article(corpus, "harbour.txt", "Lindholm harbour reopens", "The harbour reopened.")
    settings = IndexSettings(index_dir=tmp_path / "idx")
    layout = layout_of(settings)
    first = sync_index(settings, embedder, corpus)
    reader = open_store(settings.index_dir, settings.collection)
    counting = CountingEmbedder(embedder)
    rewritten = []
    try:
        for step in range(MAX_LAYERS + 2):
            counting.embedded.clear()
            write_reports(corpus, range(12 + step, 13 + step))  # one new article each time
            if step == 3:
                write_reports(corpus, range(2, 3), version=1)  # and one edited
            if step == 5:
                (corpus / "a004.txt").unlink()  # and one removed
            report = sync_index(settings, counting, corpus)
            manifest = load_manifest(layout.manifest_path(report.build_id))
            assert report.chunks_embedded == len(counting.embedded) <= 2
            assert 1 <= report.layers == len(manifest.layers) < MAX_LAYERS
            assert manifest.layers[0].build_id == first.build_id  # the base is never copied
            assert list_builds(layout) == builds_in_use(layout)
            text = (corpus / f"a{12 + step:03d}.txt").read_text(encoding="utf-8")
            title = reader.query(embedder.embed_query(text[text.index("\n") :]), 1)[0].chunk.title
            assert title == f"Report {12 + step}"  # the long-lived reader follows
            assert reader.build_id == report.build_id
            assert reader.count() == manifest.chunks == report.chunks_total
            rewritten.append(report.chunks_rewritten)
        assert sum(1 for r in rewritten if r) == 1  # the upper layers were merged once
        assert reader.stats().layers == report.layers
        layered = search_all(reader, embedder)
    finally:
        reader.close()
    whole, _ = rebuild_index(IndexSettings(index_dir=tmp_path / "whole"), embedder, corpus)
    try:
        assert whole.count() == reader.count()
        assert search_all(whole, embedder) == layered
    finally:
        whole.close()


def test_a_build_whose_chunks_lack_days_is_written_anew(tmp_path: Path, embedder: Embedder) -> None:
    corpus, settings, first = synced_corpus(tmp_path, embedder, 4)
    path = layout_of(settings).manifest_path(first.build_id)
    save_manifest(replace(load_manifest(path), days_indexed=False), path)  # as older builds
    write_reports(corpus, range(4, 5))

    report = sync_index(settings, embedder, corpus)

    assert (report.layers, report.chunks_rewritten) == (0, first.chunks_total)
    assert load_manifest(layout_of(settings).manifest_path(report.build_id)).days_indexed


def test_texts_live_beside_the_vectors_and_a_damaged_layer_is_found_at_open(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus, settings, first = synced_corpus(tmp_path, embedder, 4)
    write_reports(corpus, range(4, 5))
    second = sync_index(settings, embedder, corpus)
    layout = layout_of(settings)
    backend = LocalBackend(layout)
    client, collection = backend.open_collection(first.build_id)
    try:  # Chroma holds no documents: the texts are in the build's own file
        documents: list[object] = list(
            collection.get(limit=1, include=["documents"])["documents"] or []
        )
        assert documents == [None]
    finally:
        backend.release(client)
    store = open_store(settings.index_dir, settings.collection)
    try:
        source = (corpus / "a001.txt").read_text(encoding="utf-8")
        hit = store.query(embedder.embed_query(source[source.index("\n") :]), 1)[0]
        assert hit.chunk.title == "Report 1"
        assert hit.chunk.text
        assert hit.chunk.text in source
        stored = store.get([hit.chunk.id])
        assert stored[hit.chunk.id][0].text == hit.chunk.text
    finally:
        store.close()

    assert second.layers == 1
    database = layout.chroma_dir(first.build_id) / "chroma.sqlite3"  # the layer, not the top
    with database.open("r+b") as handle:
        handle.truncate(database.stat().st_size // 2)
    with pytest.raises(IndexDamagedError, match="is truncated"):
        open_store(settings.index_dir, settings.collection)
    with pytest.raises(IndexDamagedError):
        sync_index(settings, embedder, corpus)
    store, _ = rebuild_index(settings, embedder, corpus)
    store.close()
    assert list_builds(layout) == builds_in_use(layout)
    assert len(list_builds(layout)) == 1


def test_a_sync_that_only_removes_writes_a_build_of_no_chunks_that_hides_them(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus, settings, first = synced_corpus(tmp_path, embedder, 6)
    removed = load_manifest(layout_of(settings).manifest_path(first.build_id))
    (corpus / "a001.txt").unlink()

    report = sync_index(settings, embedder, corpus)

    assert (report.layers, report.chunks_embedded, len(report.removed)) == (1, 0, 1)
    store = open_store(settings.index_dir, settings.collection)
    try:
        assert store.manifest.own_chunks == 0
        gone = {c for e in removed.articles.values() if e.origin.endswith("a001.txt")
                for c in e.chunk_ids}  # fmt: skip
        keyword = store.keyword_index()
        assert len(keyword) == store.count() == first.chunks_total - len(gone)
        assert not gone & {h.chunk_id for h in keyword.search("Report 1", 50)}
        dense = store.query(embedder.embed_query("Report 1"), 50)
        assert len(dense) == store.count()
        assert not gone & {h.chunk.id for h in dense}
    finally:
        store.close()
    write_reports(corpus, range(6, 7))
    assert sync_index(settings, embedder, corpus).layers == 1  # the empty build is not read


def test_a_large_build_searches_its_graph_wider(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ef_search_for(150_000) == 100
    assert ef_search_for(400_000) == 1600
    assert ef_search_for(1_000_000) == 2000
    # This corpus counts as large.
    monkeypatch.setattr(backends, "LARGE_BUILD_EF_SEARCH", ((3, 1600),))
    _, settings, report = synced_corpus(tmp_path, embedder, 4)
    backend = LocalBackend(layout_of(settings))
    client, collection = backend.open_collection(report.build_id)
    try:
        assert (collection.configuration.get("hnsw") or {}).get("ef_search") == 1600
    finally:
        backend.release(client)

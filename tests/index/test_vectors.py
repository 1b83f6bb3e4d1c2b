"""Each local build keeps its vectors in a file of its own, row for row with its keyword index: a
window of days is searched exactly over those rows, finding what Chroma's own paths find (its
stored vectors, its search limited to the window's ids); a damaged file is found at open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import reader
from index.backends import LocalBackend
from index.build import rebuild_index, sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import IndexDamagedError
from index.keyword import load_keyword_index
from index.manifest import load_manifest
from index.reader import Store, open_store
from index.types import DayRange
from index.vectors import VectorReader, VectorWriter
from tests.index.conftest import layout_of, write_records

QUESTION = "Did the storm close the harbour?"
WINDOWS = [
    DayRange(20240301, 20240301),
    DayRange(20240302, 20240303),
    DayRange(None, 20240302),
    DayRange(20240304, None),
]


def test_the_file_gives_back_each_chunks_vector_in_the_order_asked(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    ids = [f"c{n}" for n in range(50)]
    writer = VectorWriter(tmp_path / "vectors.npy")
    for begin in (30, 0, 45, 10):  # written in any order, a page at a time
        end = {30: 45, 0: 10, 45: 50, 10: 30}[begin]
        writer.add(ids[begin:end], vectors[begin:end])
    order = ids[::-1]
    writer.finish(order)
    writer.close()

    assert [p.name for p in tmp_path.iterdir()] == ["vectors.npy"]  # no scratch file left
    stored = VectorReader(tmp_path / "vectors.npy", 50)
    rows = np.array([3, 17, 40, 41, 8])
    best, scores = stored.nearest(rows, vectors[49 - 17], 3)
    assert best[0] == 17
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    normed = vectors[::-1][rows] / np.linalg.norm(vectors[::-1][rows], axis=1, keepdims=True)
    exact = normed @ (vectors[32] / np.linalg.norm(vectors[32]))
    assert best.tolist() == rows[np.argsort(-exact)][:3].tolist()
    assert np.allclose(scores, np.sort(exact)[::-1][:3], atol=1e-6)
    with pytest.raises(IndexDamagedError, match="not 49 rows"):
        VectorReader(tmp_path / "vectors.npy", 49)


def test_a_chunk_without_a_vector_fails_the_build(tmp_path: Path) -> None:
    writer = VectorWriter(tmp_path / "vectors.npy")
    writer.add(["a"], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(IndexDamagedError, match="no vectors for 1 chunk"):
        writer.finish(["a", "b"])
    writer.close()


def dated_records(version: int = 0) -> list[dict[str, str]]:
    """40 storm reports over four days of March 2024, and one undated one."""
    records = [
        {
            "id": f"r{n}",
            "title": f"Storm report {n}",
            "text": f"The storm closed the harbour, report {n} version {version}. Ferries stayed "
            f"in port on day {n % 4} while crews checked the {['pier', 'lamp', 'quay'][n % 3]}.",
            "published": f"2024-03-0{1 + n % 4}",
            "source": "Wire",
        }
        for n in range(40)
    ]
    records.append({"id": "undated", "title": "Harbour notes", "text": "The harbour storm."})
    return records


def searches(store: Store, embedder: Embedder) -> list[list[tuple[str, float]]]:
    vector = embedder.embed_query(QUESTION)
    found = []
    for days in WINDOWS:
        for exclude in ((), ("r4", "r8")):
            hits = store.query(vector, 6, exclude, days=days)
            found.append([(h.chunk.id, round(h.similarity, 4)) for h in hits])
            assert all(days.allows(reader.day_of(h.chunk)) for h in hits)
            assert all(h.chunk.text for h in hits)
    return found


def test_a_window_finds_over_the_file_what_chroma_finds(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_records(tmp_path / "articles.jsonl", dated_records())
    settings = IndexSettings(index_dir=tmp_path / "index")
    sync_index(settings, embedder, source)
    following = open_store(settings.index_dir, settings.collection)  # a long-lived reader
    following.keyword_index()  # handed out: it follows each new build
    edited = dated_records()
    for n in (1, 6, 11):  # changed articles: the base build hides their old chunks
        edited[n] = dated_records(version=1)[n]
    write_records(source, edited)
    report = sync_index(settings, embedder, source)
    assert report.layers == 1
    layout = layout_of(settings)
    manifest = load_manifest(layout.manifest_path(report.build_id))
    backend = LocalBackend(layout)
    for build in manifest.builds_read():  # each file row for row with its keyword index
        count = manifest.own_chunks if build == report.build_id else manifest.layers[0].chunks
        keyword = load_keyword_index(layout.keyword_dir(build), count)
        client, collection = backend.open_collection(build)
        try:
            stored = collection.get(ids=keyword.chunk_ids, include=["embeddings"])
            by_id = dict(zip(stored["ids"], np.asarray(stored["embeddings"]), strict=True))
        finally:
            backend.release(client)
        on_file = np.load(layout.vectors_path(build))
        expected = np.stack([by_id[i] for i in keyword.chunk_ids]).astype(np.float32)
        assert np.allclose(on_file, expected, atol=1e-6)  # Chroma normalizes what it stores

    store = open_store(settings.index_dir, settings.collection)
    try:
        assert all(part.vectors is not None for part in store._current.parts)
        over_file = searches(store, embedder)
    finally:
        store.close()
    assert [len(hits) for hits in over_file] == [6] * len(over_file)
    try:
        assert searches(following, embedder) == over_file  # it moved to the sync's build
    finally:
        following.close()
    for build in manifest.builds_read():  # as a build written before the file existed
        layout.vectors_path(build).unlink()
    store = open_store(settings.index_dir, settings.collection)
    try:
        assert all(part.vectors is None for part in store._current.parts)
        over_chroma = searches(store, embedder)
        monkeypatch.setattr(reader, "EXACT_LIMIT", 0)  # Chroma's search limited to the ids
        by_ids = searches(store, embedder)
    finally:
        store.close()
    assert [[i for i, _ in hits] for hits in over_file] == [[i for i, _ in h] for h in over_chroma]
    assert over_file == over_chroma
    assert [[i for i, _ in hits] for hits in by_ids] == [[i for i, _ in h] for h in over_file]


def test_a_damaged_vectors_file_is_found_at_open_and_a_rebuild_mends_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    source = write_records(tmp_path / "articles.jsonl", dated_records())
    settings = IndexSettings(index_dir=tmp_path / "index")
    report = sync_index(settings, embedder, source)
    path = layout_of(settings).vectors_path(report.build_id)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    with pytest.raises(IndexDamagedError, match="vectors file"):
        open_store(settings.index_dir, settings.collection)
    write_records(source, [*dated_records(), {"id": "new", "title": "New", "text": "New text."}])
    with pytest.raises(IndexDamagedError, match="vectors file"):
        sync_index(settings, embedder, source)  # nothing is built on a damaged build
    store, _ = rebuild_index(settings, embedder, source)
    try:
        assert store.query(embedder.embed_query(QUESTION), 3, days=WINDOWS[0])
    finally:
        store.close()

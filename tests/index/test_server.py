"""Chroma server mode (`CITEQA_CHROMA_URL`) against a real `chroma run`: the catalog swap,
a second machine sharing the index (a sync's layered builds included), an unreachable server,
and telemetry off."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from index.backends import LocalBackend, chroma_settings, connect
from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import IndexDamagedError, IndexServerError
from index.layout import IndexLayout
from index.manifest import Manifest, load_manifest
from index.reader import Store, open_store
from index.records import LAYERS
from tests.index.conftest import layout_of, write_article, write_reports
from tests.support.servers import free_port


def server_settings(index_dir: Path, url: str, collection: str) -> IndexSettings:
    return IndexSettings(index_dir=index_dir, collection=collection, chroma_url=url)


def test_a_second_machine_shares_the_server_index(
    tmp_path: Path, chroma_server: str, small_corpus: Path, embedder: Embedder
) -> None:
    collection = f"t{uuid.uuid4().hex[:12]}"
    writer = server_settings(tmp_path / "machine-a", chroma_server, collection)
    report = sync_index(writer, embedder, small_corpus)
    catalog = connect(chroma_server).get_collection(f"{collection}__live")
    assert (catalog.metadata or {})["citeqa:live"] == report.build_id

    # Another machine: same server and collection, nothing on its own disk yet.
    reader = server_settings(tmp_path / "machine-b", chroma_server, collection)
    store = open_store(reader.index_dir, reader.collection, reader.chroma_url)
    try:
        assert store.build_id == report.build_id
        assert store.stats().articles == 5
        assert store.keyword_index().search("chess olympiad", 1)[0].article_id == "wire-2"
        hit = store.query(embedder.embed_query("drones over the glacier"), 1)[0]
        assert hit.chunk.article_id == "wire-1"
    finally:
        store.close()
    local = layout_of(reader)
    assert local.manifest_path(report.build_id).is_file()  # derived once, kept on this disk
    assert (local.keyword_dir(report.build_id) / "chunks.json").is_file()
    # Its record, rebuilt from the server's chunks, tells a sync that nothing changed.
    again = sync_index(reader, embedder, small_corpus)
    assert (again.published, len(again.unchanged)) == (False, 5)


def articles_held(manifest: Manifest) -> dict[str, tuple[str, str, list[str], str]]:
    """Each article's hash, origin, chunk ids (sorted) and the build holding them."""
    return {
        article_id: (e.content_hash, e.origin, sorted(e.chunk_ids), manifest.holder(e))
        for article_id, e in manifest.articles.items()
    }


def found(store: Store, embedder: Embedder, question: str) -> str:
    return store.query(embedder.embed_query(question), 1)[0].chunk.title


def test_a_second_machine_reads_a_syncs_layered_build_from_the_server_alone(
    tmp_path: Path, chroma_server: str, small_corpus: Path, embedder: Embedder
) -> None:
    collection = f"t{uuid.uuid4().hex[:12]}"
    writer = server_settings(tmp_path / "machine-a", chroma_server, collection)
    write_reports(small_corpus, range(6))  # unchanged articles: the first build stays the base
    first = sync_index(writer, embedder, small_corpus)
    write_article(
        small_corpus,
        "lighthouse.txt",
        "Lighthouse lamp restored",
        "Volunteers in Skagen restored the brass lamp of the old lighthouse.",
    )
    write_article(
        small_corpus,
        "harbour.txt",
        "Lindholm harbour stays shut",
        "The harbour of Lindholm stays shut until spring: divers found cracks in the quay wall.",
    )
    (small_corpus / "orchard.txt").unlink()

    second = sync_index(writer, embedder, small_corpus)

    # Written as a local sync is: the changed articles only, reading the rest from the first.
    assert (second.layers, second.chunks_rewritten) == (1, 0)
    assert second.chunks_embedded == 2
    record = load_manifest(layout_of(writer).manifest_path(second.build_id))
    assert record.layers[0].build_id == first.build_id
    assert record.layers[0].hidden

    # Another machine, with only the server: the same record, rebuilt; the same searches.
    reader = server_settings(tmp_path / "machine-b", chroma_server, collection)
    store = open_store(reader.index_dir, reader.collection, reader.chroma_url)
    try:
        assert store.build_id == second.build_id
        assert store.stats().layers == 1
        assert store.count() == record.chunks
        rebuilt = load_manifest(layout_of(reader).manifest_path(second.build_id))
        assert articles_held(rebuilt) == articles_held(record)
        assert rebuilt.layers == record.layers
        assert found(store, embedder, "cracks in the quay wall") == "Lindholm harbour stays shut"
        hits = store.query(embedder.embed_query("cider orchards blossomed early"), 10)
        assert "Cider orchards bloom early" not in {h.chunk.title for h in hits}  # hidden
        lighthouse = [a for a, e in record.articles.items() if e.origin.endswith("lighthouse.txt")]
        assert [h.article_id for h in store.keyword_index().search("Skagen lamp", 1)] == lighthouse
    finally:
        store.close()

    # That machine syncs in turn: nothing changed; then an edit, layered over the same base.
    assert sync_index(reader, embedder, small_corpus).published is False
    write_article(
        small_corpus,
        "zeppelin.txt",
        "Zeppelin museum closes",
        "The zeppelin museum in Friedrichshafen closes its hangar for a new roof.",
    )
    third = sync_index(reader, embedder, small_corpus)
    assert (third.layers, third.chunks_embedded, third.chunks_rewritten) == (2, 1, 0)
    # And the first machine reads that build from the server.
    store = open_store(writer.index_dir, writer.collection, writer.chroma_url)
    try:
        assert store.build_id == third.build_id
        assert found(store, embedder, "a new roof for the hangar") == "Zeppelin museum closes"
        assert store.count() == third.chunks_total
    finally:
        store.close()


def test_a_damaged_list_of_layers_is_found_by_a_machine_that_rebuilds_the_record(
    tmp_path: Path, chroma_server: str, small_corpus: Path, embedder: Embedder
) -> None:
    collection = f"t{uuid.uuid4().hex[:12]}"
    writer = server_settings(tmp_path / "machine-a", chroma_server, collection)
    write_reports(small_corpus, range(6))
    sync_index(writer, embedder, small_corpus)
    write_reports(small_corpus, range(1), version=1)  # one edited
    layered = sync_index(writer, embedder, small_corpus)
    assert layered.layers == 1
    stored = connect(chroma_server).get_collection(f"{collection}__{layered.build_id}")
    itself = json.dumps([{"build": layered.build_id, "chunks": 1, "hidden": []}])
    for number, damage in enumerate(('[{"build": "not a build"}]', itself)):
        stored.modify(metadata={**(stored.metadata or {}), LAYERS: damage})
        reader = server_settings(tmp_path / f"machine-{number}", chroma_server, collection)
        with pytest.raises(IndexDamagedError, match="damaged list of layers"):
            open_store(reader.index_dir, reader.collection, reader.chroma_url)


def test_an_unreachable_server_says_what_to_do(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(IndexServerError, match=rf"Cannot reach the Chroma server at {url}"):
        open_store(tmp_path, "articles", url)


def test_telemetry_is_off_in_both_modes(
    tmp_path: Path, chroma_server: str, small_corpus: Path, embedder: Embedder
) -> None:
    assert chroma_settings().anonymized_telemetry is False
    assert connect(chroma_server).get_settings().anonymized_telemetry is False
    local = IndexSettings(index_dir=tmp_path / "idx")
    sync_index(local, embedder, small_corpus)
    backend = LocalBackend(IndexLayout(local.index_dir, local.collection))
    client, _ = backend.open_collection(str(backend.live_build()))
    try:
        assert client.get_settings().anonymized_telemetry is False
    finally:
        backend.release(client)

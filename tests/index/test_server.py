"""Chroma server mode (`CITEQA_CHROMA_URL`) against a real `chroma run`: the catalog swap,
a second machine sharing the index, an unreachable server, and telemetry off."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from index.backends import LocalBackend, chroma_settings, connect
from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import IndexServerError
from index.layout import IndexLayout
from index.reader import open_store
from tests.index.conftest import layout_of
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

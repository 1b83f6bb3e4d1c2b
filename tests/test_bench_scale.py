"""bench/scale.py's server part starts from a copy of the local build: the copy is a server build
the app reads as it reads the local one, and a sync through the server layers over it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from index.backends import ServerBackend
from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.layout import IndexLayout
from index.reader import open_store
from tests.index.conftest import write_article, write_reports

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scale() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "bench"))  # scale.py imports its neighbours by name
    try:
        import scale as module

        yield module
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_server_gets_a_copy_of_the_local_build_and_syncs_over_it(
    tmp_path: Path, scale: ModuleType, embedder: Embedder
) -> None:
    corpus = tmp_path / "scale-6"
    corpus.mkdir()
    write_reports(corpus, range(6))
    write_article(corpus, "harbour.txt", "Lindholm harbour reopens", "Ferries run again.")
    local = IndexSettings(index_dir=corpus / "index")
    built = sync_index(local, embedder, corpus)
    scale.remember_build(local.index_dir, "k", {})
    folder = tmp_path / "server-6"

    seeded = scale.seed_server(local.index_dir, folder, folder / "index")

    assert seeded is not None
    assert (seeded["build"], seeded["chunks"]) == (built.build_id, built.chunks_total)
    assert scale.seed_server(local.index_dir, folder, folder / "index") is None  # once
    question = embedder.embed_query("Did the ferries run again?")
    with scale.chroma_server(folder / "chroma", folder / "chroma.log") as (url, _):
        layout = IndexLayout(folder / "index", local.collection)
        ServerBackend(layout, url).publish(seeded["build"])
        store = open_store(layout.index_dir, layout.collection, url)
        try:
            assert store.build_id == built.build_id
            assert store.count() == built.chunks_total
            hit = store.query(question, 1)[0]
            assert (hit.chunk.title, hit.chunk.text) == (
                "Lindholm harbour reopens",
                "Ferries run again.",
            )
        finally:
            store.close()
        write_article(corpus, "harbour.txt", "Lindholm harbour shuts", "Ferries stop again.")
        server = IndexSettings(index_dir=layout.index_dir, chroma_url=url)
        report = sync_index(server, embedder, corpus)
        # The copy's articles come from the same files: only the edited one is written.
        assert (report.layers, report.chunks_embedded, report.chunks_rewritten) == (1, 1, 0)
        store = open_store(layout.index_dir, layout.collection, url)
        try:
            assert store.query(question, 1)[0].chunk.title == "Lindholm harbour shuts"
        finally:
            store.close()

"""URL uploads from a page open to the network: the first check (`check_url`) is not the only one.
A host whose first lookup looked public, then redirects to a private address, is refused by the
fetcher at that hop, and nothing is saved or indexed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from index import fetch
from index.build import rebuild_index
from index.embeddings import Embedder
from index.reader import open_store
from qa import catalog
from qa.catalog import add_articles, upload_folder
from qa.retrieval import PassageRetriever
from tests.conftest import make_settings


class ToPrivate(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://10.0.0.1/internal/report.html")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ToPrivate)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/story.html"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_a_redirect_to_a_private_address_is_refused_when_exposed(
    corpus_dir: Path,
    tmp_path: Path,
    embedder: Embedder,
    redirecting: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(tmp_path / "index", articles_dir=corpus_dir, llm_backend="extractive")
    rebuild_index(settings, embedder, corpus_dir)
    store = open_store(settings.index_dir, settings.collection)
    retriever = PassageRetriever(embedder=embedder, store=store, keyword=store.keyword_index())
    # The test server stands for a public one: the first check passes it, and so does the
    # fetcher's check of 127.0.0.1 (only that address).
    monkeypatch.setattr(catalog, "check_url", lambda url, allow_private: None)
    real = fetch.is_public_address
    monkeypatch.setattr(fetch, "is_public_address", lambda a: a == "127.0.0.1" or real(a))
    result = add_articles(settings, retriever, [], [redirecting], allow_private_urls=False)
    assert result.report is None
    assert result.saved == ()
    (refused,) = result.rejected
    assert refused.origin == redirecting
    assert refused.reason.startswith(
        "redirected to http://10.0.0.1/internal/report.html: 10.0.0.1 is a local or private address"
    )
    assert not upload_folder(settings).exists()

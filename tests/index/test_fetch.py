"""Pages and feeds fetched from a real HTTP server on loopback, and every way a fetch can fail."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from index.fetch import Page, html_fragment_text, looks_like_feed, parse_content_type
from index.sources import load_sources
from index.types import LoadResult, Rejection

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ingest"
CONTENT_TYPES = {
    "rss.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml",
}
LIMIT = 50_000  # the size cap the tests pass as max_bytes


@dataclass
class NewsServer:
    """A loopback server of the ingestion fixtures, plus routes that misbehave on purpose."""

    base: str
    user_agents: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def make_handler(server: NewsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.user_agents.append(self.headers.get("User-Agent", ""))
            path = self.path
            if path.startswith("/pages/") or path.startswith("/feeds/"):
                name = path.rsplit("/", 1)[-1]
                file = FIXTURES / name
                if not file.is_file():
                    self.send_error(404)
                    return
                text = file.read_text(encoding="utf-8").replace("{{BASE}}", server.base)
                kind = CONTENT_TYPES.get(name, "text/html; charset=utf-8")
                self.reply(200, kind, text.encode("utf-8"))
            elif path.startswith("/moved/"):
                self.send_response(301)
                self.send_header("Location", "/pages/" + path.rsplit("/", 1)[-1])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/slow":
                server.release.wait(10)  # far longer than the tests' timeout
                self.reply(200, "text/html", b"<html><body><p>Too late.</p></body></html>")
            elif path == "/big":
                self.reply(200, "text/html", b"<p>" + b"x" * LIMIT + b"</p>")
            elif (
                path == "/big-unannounced"
            ):  # no Content-Length: the body ends when the socket does
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                for _ in range(20):
                    self.wfile.write(b"<p>" + b"y" * 5_000 + b"</p>")
            elif path == "/photo.png":
                self.reply(200, "image/png", b"\x89PNG\r\n\x1a\n")
            elif path == "/data.xml":
                self.reply(
                    200, "application/xml", b"<?xml version='1.0'?><catalog><item/></catalog>"
                )
            elif path == "/empty-feed.xml":
                empty = b"<rss version='2.0'><channel><title>Quiet</title></channel></rss>"
                self.reply(200, "application/rss+xml", empty)
            else:
                self.send_error(404)

        def reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture(scope="module")
def news() -> Iterator[NewsServer]:
    state = NewsServer(base="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def load(*sources: str | Path, timeout_s: float = 5.0) -> LoadResult:
    result = load_sources(list(sources), timeout_s=timeout_s, max_bytes=LIMIT)
    assert result.inputs == len(result.articles) + len(result.rejected) + len(result.duplicates)
    return result


def only_rejection(result: LoadResult) -> Rejection:
    assert result.articles == ()
    (rejection,) = result.rejected
    return rejection


def test_page_url_gives_one_article_with_its_metadata(news: NewsServer) -> None:
    url = f"{news.base}/pages/ferry-fares.html"
    result = load(url)
    assert result.rejected == ()
    (article,) = result.articles
    assert article.title == "Ferry fares to the outer islands rise in June"
    assert article.source == "Harbour Times"
    assert article.url == "https://harbourtimes.example/2024/05/20/ferry-fares-rise"  # canonical
    assert article.published == "2024-05-20"
    assert article.authors == ("Per Lund",)
    assert article.origin == url
    assert article.text.startswith("Single tickets on the ferries from Lindholm")
    assert any(agent.startswith("citeqa/") for agent in news.user_agents)


def test_redirects_are_followed(news: NewsServer) -> None:
    (article,) = load(f"{news.base}/moved/ferry-fares.html").articles
    assert article.title == "Ferry fares to the outer islands rise in June"


def test_rss_feed_fetches_each_entry_and_falls_back_to_the_feed_text(news: NewsServer) -> None:
    result = load(f"{news.base}/feeds/rss.xml")
    fares, library = result.articles
    # The linked page is fetched and extracted; the feed fills in nothing it already has.
    assert fares.url == "https://harbourtimes.example/2024/05/20/ferry-fares-rise"
    assert (fares.source, fares.published, fares.authors) == (
        "Harbour Times",
        "2024-05-20",
        ("Per Lund",),
    )
    # The page is gone (404), but the feed carries the whole story.
    assert library.title == "Lindholm library extends its opening hours"
    assert library.text.startswith("The Lindholm town library will open on Sunday afternoons")
    assert "Sofie Dahl" in library.text
    assert library.url == f"{news.base}/gone/library-hours.html"
    assert (library.source, library.published, library.authors) == (
        "Harbour Times",
        "2024-05-21",
        ("Anja Strand",),
    )
    # The page is gone and the feed has one sentence: rejected, saying both.
    (teaser,) = result.rejected
    assert teaser.origin == f"{news.base}/gone/council-meeting.html"
    assert "404 Not Found" in teaser.reason
    assert "characters of its text" in teaser.reason


def test_atom_feed_entries_and_the_page_they_duplicate(news: NewsServer) -> None:
    result = load(f"{news.base}/pages/wire-harbour-times.html", f"{news.base}/feeds/atom.xml")
    assert result.rejected == ()
    assert [a.title for a in result.articles] == [
        "Port of Lindholm reopens after three-day storm closure",
        "Lindholm dock workers vote to strike over storm overtime",
    ]
    wire, strike = result.articles
    assert wire.other_sources == (
        "Coastal Courier "
        "<https://coastalcourier.example/news/storm-hit-lindholm-port-back-in-business>",
    )
    (copy,) = result.duplicates
    assert copy.origin == f"{news.base}/pages/wire-coastal-courier.html"
    assert copy.kept_id == wire.id
    assert (strike.source, strike.published, strike.authors) == (
        "Coastal Courier",
        "2024-05-06",
        ("Maren Holt",),
    )


def test_not_found(news: NewsServer) -> None:
    rejection = only_rejection(load(f"{news.base}/pages/no-such-story.html"))
    assert rejection.reason == "the server answered 404 Not Found"


def test_timeout(news: NewsServer) -> None:
    rejection = only_rejection(load(f"{news.base}/slow", timeout_s=0.5))
    assert "timed out" in rejection.reason
    assert "0.5 s" in rejection.reason


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_oversized_body(news: NewsServer, path: str) -> None:
    rejection = only_rejection(load(news.base + path))
    assert f"larger than the limit of {LIMIT:,} bytes" in rejection.reason


def test_wrong_content_type(news: NewsServer) -> None:
    rejection = only_rejection(load(f"{news.base}/photo.png"))
    assert rejection.reason.startswith("unsupported content type image/png")


def test_xml_that_is_not_a_feed_and_a_feed_without_entries(news: NewsServer) -> None:
    result = load(f"{news.base}/data.xml", f"{news.base}/empty-feed.xml")
    assert result.articles == ()
    assert [r.reason for r in result.rejected] == [
        "the application/xml document is not an RSS or Atom feed",
        "the feed has no entries",
    ]


def test_unreachable_host_and_other_schemes() -> None:
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = load(f"http://127.0.0.1:{port}/story.html", "ftp://example.org/story.txt")
    refused, ftp = result.rejected
    assert refused.reason.startswith("cannot fetch the URL (ConnectError")
    assert ftp.reason.startswith("unsupported URL scheme ftp://")


def test_files_folders_and_urls_together(news: NewsServer, tmp_path: Path) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    shutil.copy(FIXTURES / "wire-valley-gazette.md", folder)
    (folder / "broken.json").write_text("{oops", encoding="utf-8")
    result = load(
        folder,
        str(tmp_path / "missing"),
        f"{news.base}/pages/wire-harbour-times.html",
        f"{news.base}/feeds/rss.xml",
        f"{news.base}/photo.png",
    )
    assert len(result.articles) == 3  # the wire story (two copies merged), fares, library
    assert len(result.duplicates) == 1
    assert sorted(Path(r.origin).name for r in result.rejected) == [
        "broken.json",
        "council-meeting.html",
        "missing",
        "photo.png",
    ]
    assert result.inputs == 8


def test_parse_content_type() -> None:
    assert parse_content_type('Text/HTML; Charset="ISO-8859-1"') == ("text/html", "ISO-8859-1")
    assert parse_content_type("application/rss+xml") == ("application/rss+xml", None)
    assert parse_content_type(None) == ("", None)


def test_feeds_are_recognised_by_type_or_by_root_element() -> None:
    def page(media_type: str, body: bytes) -> Page:
        return Page("http://x", media_type, None, body)

    assert looks_like_feed(page("application/atom+xml", b""))
    assert looks_like_feed(
        page("text/xml", b"\xef\xbb\xbf<?xml version='1.0'?>\n<rss version='2.0'>")
    )
    assert looks_like_feed(
        page("text/html", b"<!-- a feed --><feed xmlns='http://www.w3.org/2005/Atom'>")
    )
    assert not looks_like_feed(page("application/xml", b"<?xml version='1.0'?><catalog/>"))
    assert not looks_like_feed(page("text/html", b"<!doctype html><html><body>rss</body></html>"))


def test_html_fragment_text() -> None:
    fragment = "<p>First &amp; second.</p><p>Third<br>line <b>bold</b></p><script>x()</script>"
    assert html_fragment_text(fragment) == "First & second.\nThird\nline bold"

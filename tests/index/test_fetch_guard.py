"""Fetching for a page open to the network: every connection, the first and each redirect's, goes
to a public address that was checked, never to loopback, private or link-local ones.

Tests run on loopback, so the tests that need a "public" server first let 127.0.0.1 pass as
public (nothing else), then redirect to a private address: the fetcher must refuse that hop before
connecting (the offline guard would fail the test if anything tried to reach 10.0.0.1).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from index import fetch
from index.fetch import (
    BlockedAddressError,
    PublicOnlyBackend,
    is_public_address,
    open_fetcher,
    public_addresses_only,
    public_transport,
)
from index.sources import load_sources
from index.types import Rejection

PAGE = (
    b"<html><head><title>Tram line opens</title></head><body><article><h1>Tram line opens</h1>"
    b"<p>The new tram line between the station and the harbour opened on Monday, the city's "
    b"transport office said. Trams run every six minutes in the day and every fifteen at night, "
    b"and the fare is the same as on the buses.</p></article></body></html>"
)


class Redirects(BaseHTTPRequestHandler):
    paths: list[str]  # every path asked for, in order (set on the class per server)

    def do_GET(self) -> None:
        self.paths.append(self.path)
        port = self.server.server_address[1]  # type: ignore[index]  # an (address, port) pair
        targets = {
            "/to-private": "http://10.0.0.1/admin",
            "/to-link-local": "http://169.254.169.254/latest/meta-data/",
            "/to-mapped": "http://[::ffff:10.0.0.1]/admin",
            "/to-other-port": f"http://127.0.0.2:{port}/page.html",
            "/to-ftp": "ftp://127.0.0.1/page.html",
            "/loop": "/loop",
            "/hop": "/page.html",
        }
        if self.path in targets:
            self.send_response(302)
            self.send_header("Location", targets[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/page.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    paths: list[str] = []
    handler = type("Handler", (Redirects,), {"paths": paths})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", paths
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 (the test server) passes the check as a public address would; nothing else
    changes: ::1, 10/8, 169.254/16 and the rest stay refused."""
    real = fetch.is_public_address
    monkeypatch.setattr(fetch, "is_public_address", lambda a: a == "127.0.0.1" or real(a))


def only_rejection(url: str) -> Rejection:
    result = load_sources([url], timeout_s=5, max_bytes=100_000)
    assert result.articles == ()
    (rejection,) = result.rejected
    return rejection


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("::ffff:93.184.215.14", True),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_a_loopback_url_is_refused_before_any_request(server: tuple[str, list[str]]) -> None:
    base, paths = server
    before = len(paths)
    with public_addresses_only():
        rejection = only_rejection(f"{base}/page.html")
    assert rejection.reason == (
        "127.0.0.1 is a local or private address; a page open to the network fetches public "
        "addresses only"
    )
    assert len(paths) == before  # the server never saw the request


def test_redirects_to_private_addresses_are_refused_at_their_hop(
    server: tuple[str, list[str]], loopback_counts_as_public: None
) -> None:
    base, paths = server
    with public_addresses_only():
        private = only_rejection(f"{base}/to-private")
        metadata = only_rejection(f"{base}/to-link-local")
        mapped = only_rejection(f"{base}/to-mapped")
        loopback = only_rejection(f"{base}/to-other-port")
    assert private.reason.startswith(
        "redirected to http://10.0.0.1/admin: 10.0.0.1 is a local or private address"
    )
    assert metadata.reason.startswith("redirected to http://169.254.169.254/latest/meta-data/")
    assert "::ffff:10.0.0.1 is a local or private address" in mapped.reason
    assert "127.0.0.2 is a local or private address" in loopback.reason  # only .1 let through
    assert "/page.html" not in paths


def test_a_redirect_within_public_addresses_is_followed(
    server: tuple[str, list[str]], loopback_counts_as_public: None
) -> None:
    base, _ = server
    with public_addresses_only():
        result = load_sources([f"{base}/hop"], timeout_s=5, max_bytes=100_000)
    (article,) = result.articles
    assert article.title == "Tram line opens"


def test_the_connection_goes_to_the_address_that_was_checked(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host is resolved once, per connection: the address checked is the one connected to
    (a second lookup, which DNS could answer differently, never happens)."""
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    lookups: list[str] = []
    answers = {"news.example": ["127.0.0.1"], "rebind.example": ["93.184.215.14", "10.0.0.1"]}

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers[host]

    monkeypatch.setattr(fetch, "resolve_host", resolve)
    monkeypatch.setattr(fetch, "is_public_address", lambda a: a in ("127.0.0.1", "93.184.215.14"))
    with public_addresses_only():
        result = load_sources(
            [f"http://news.example:{port}/page.html", f"http://rebind.example:{port}/page.html"],
            timeout_s=5,
            max_bytes=100_000,
        )
    (article,) = result.articles
    assert article.title == "Tram line opens"
    (refused,) = result.rejected
    assert refused.reason.startswith(
        "rebind.example resolves to 10.0.0.1, which is a local or private address"
    )
    assert lookups == ["news.example", "rebind.example"]


def test_other_schemes_and_endless_redirects_are_refused(server: tuple[str, list[str]]) -> None:
    base, _ = server
    assert only_rejection(f"{base}/to-ftp").reason == "redirected to a ftp: URL, not http(s)"
    assert only_rejection(f"{base}/loop").reason == "too many redirects"


def test_the_default_fetcher_still_follows_loopback_redirects(
    server: tuple[str, list[str]],
) -> None:
    base, _ = server
    with open_fetcher(timeout_s=5, max_bytes=100_000) as fetcher:
        page = fetcher.get(f"{base}/hop", accept={"text/html"})
    assert page.url == f"{base}/page.html"


def test_the_public_transport_uses_the_guarded_backend() -> None:
    """httpx offers no network-backend option: `public_transport` replaces its pool, and this
    fails if a new httpx stops sending requests through it."""
    transport = public_transport()
    with httpx.Client(transport=transport) as client, pytest.raises(BlockedAddressError):
        client.get("http://127.0.0.1:9/")
    with pytest.raises(BlockedAddressError, match="local sockets"):
        PublicOnlyBackend().connect_unix_socket("/tmp/socket")

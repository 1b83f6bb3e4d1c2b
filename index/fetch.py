"""Fetching web pages and RSS/Atom feeds over HTTP (the only importer of httpx, httpcore and
feedparser).

`open_fetcher` gives a `Fetcher` that follows redirects (at most `MAX_REDIRECTS`, each hop
checked), sends the User-Agent `citeqa`, stops at a timeout and at a size cap, and turns every
failure (non-2xx answers, timeouts, unwanted content types, oversized bodies, unreachable hosts)
into a `FetchError` with a readable reason. `parse_feed` reads a fetched RSS or Atom document into
plain `FeedEntry` values.

Inside `public_addresses_only()` (the web page open to a network), fetchers connect to public
addresses only: every connection, the first and each redirect's, resolves its host once, is
refused when any address is loopback, private, link-local, multicast or reserved, and connects to
the address it checked (so a second DNS answer cannot swap it), with no proxy in between.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import ipaddress
import re
import socket
import time
from collections.abc import Collection, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from html.parser import HTMLParser
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from index.errors import CiteqaIndexError

if TYPE_CHECKING:
    import httpcore
    import httpx

USER_AGENT = "citeqa/0.1 (news question answering; article ingestion)"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml"}
    | {"text/xml", "application/x-rss+xml"}
)
PDF_TYPES = frozenset({"application/pdf"})
_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/pdf;q=0.9,application/xml;q=0.9,text/xml;q=0.9"
)
_FEED_ROOT = re.compile(
    rb"\A(?:\s|<\?[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<(?:rss|feed|rdf:RDF)\b", re.DOTALL
)
MAX_REDIRECTS = 10  # hops one fetch follows, each checked like the first
# Set by `public_addresses_only()`: fetchers opened meanwhile connect to public addresses only.
_PUBLIC_ONLY: ContextVar[bool] = ContextVar("citeqa_fetch_public_only", default=False)


class FetchError(CiteqaIndexError):
    """A URL could not be fetched or read; the message is the reason, for people."""


class BlockedAddressError(FetchError):
    """A fetch would have connected to a loopback, private, link-local or reserved address."""


@contextlib.contextmanager
def public_addresses_only() -> Iterator[None]:
    """Within this block, `open_fetcher` gives fetchers that connect to public addresses only
    (for a page open to the network, whose users must not reach this machine's or its network's
    services through it)."""
    token = _PUBLIC_ONLY.set(True)
    try:
        yield
    finally:
        _PUBLIC_ONLY.reset(token)


def is_public_address(address: str) -> bool:
    """Whether a fetch may connect to this IP address: not loopback, private, link-local,
    multicast, reserved or unspecified (an IPv4-mapped IPv6 address counts as its IPv4 one)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (once), in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicOnlyBackend:
    """httpcore's network backend for public addresses only: resolves the host once, refuses
    (`BlockedAddressError`) when any of its addresses is not public, then connects to the
    addresses it checked, in order; TLS still checks the certificate against the host name."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        import httpcore

        try:
            addresses = resolve_host(host, port)
        except OSError as e:
            raise httpcore.ConnectError(f"the host {host} cannot be resolved ({e})") from e
        for address in addresses:
            if not is_public_address(address):
                named = address if address == host else f"{host} resolves to {address}, which"
                raise BlockedAddressError(
                    f"{named} is a local or private address; a page open to the network fetches "
                    "public addresses only"
                )
        inner = httpcore.SyncBackend()
        failure: Exception = httpcore.ConnectError(f"the host {host} has no address")
        for address in addresses:
            try:
                return inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:  # the next address may answer
                failure = e
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise BlockedAddressError("local sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched document: where it ended up after redirects, its media type and its bytes."""

    url: str
    media_type: str  # lower case, without parameters: "text/html"
    charset: str | None
    body: bytes

    def decoded(self) -> str | bytes:
        """The body decoded with the charset the server named, else the raw bytes (for sniffing)."""
        if self.charset:
            try:
                return self.body.decode(self.charset, errors="replace")
            except LookupError:  # an unknown charset name
                return self.body
        return self.body


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item of a feed, in plain values."""

    link: str | None
    title: str | None
    published: str | None  # ISO date
    authors: tuple[str, ...]
    text: str  # the entry's own content or summary, as plain text


@dataclass(frozen=True, slots=True)
class Feed:
    """A parsed RSS or Atom feed."""

    url: str
    title: str | None
    entries: tuple[FeedEntry, ...]


class Fetcher:
    """Gets URLs with one HTTP client; close it (or use `with`) when done."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        timeout_s: float,
        max_bytes: int,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects

    def get(self, url: str, accept: Collection[str]) -> Page:
        """The document at `url`, if its media type is in `accept`; `FetchError` otherwise."""
        import httpx

        deadline = time.monotonic() + self._timeout_s
        try:
            with self._open(url) as response:
                if not response.is_success:
                    raise FetchError(
                        f"the server answered {response.status_code} {response.reason_phrase}"
                    )
                media_type, charset = parse_content_type(response.headers.get("content-type"))
                if media_type not in accept:
                    raise FetchError(
                        f"unsupported content type {media_type or '(none)'}; "
                        "expected an HTML page, an RSS/Atom feed or a PDF"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise FetchError(self._too_big(int(declared)))
                body = bytearray()
                for piece in response.iter_bytes():
                    body.extend(piece)
                    if len(body) > self._max_bytes:
                        raise FetchError(self._too_big(None))
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("total time limit", request=response.request)
                return Page(str(response.url), media_type, charset, bytes(body))
        except httpx.TimeoutException as e:
            raise FetchError(
                f"no complete answer within {self._timeout_s:g} s (timed out); "
                "try again later or raise the timeout"
            ) from e
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise FetchError(f"cannot fetch the URL ({e.__class__.__name__}: {e})") from e

    @contextlib.contextmanager
    def _open(self, url: str) -> Iterator[httpx.Response]:
        """The response at the end of `url`'s redirects, each hop followed here: an http(s) URL,
        at most `max_redirects` of them, each connection made by the client's transport (which
        checks the address it connects to when public addresses only are allowed)."""
        request = self._client.build_request("GET", url)
        for hop in range(self._max_redirects + 1):
            try:
                response = self._client.send(request, stream=True, follow_redirects=False)
            except BlockedAddressError as e:
                if hop:
                    raise BlockedAddressError(f"redirected to {request.url}: {e}") from e
                raise
            following = response.next_request
            if following is None:
                try:
                    yield response
                finally:
                    response.close()
                return
            response.close()
            if following.url.scheme not in ("http", "https"):
                raise FetchError(f"redirected to a {following.url.scheme}: URL, not http(s)")
            request = following
        raise FetchError("too many redirects")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _too_big(self, size: int | None) -> str:
        found = f" ({size:,} bytes)" if size is not None else ""
        return f"the response is larger than the limit of {self._max_bytes:,} bytes{found}"


def open_fetcher(*, timeout_s: float, max_bytes: int, public_only: bool | None = None) -> Fetcher:
    """A `Fetcher` with the citeqa User-Agent, redirects followed (each hop checked), a timeout
    and a size cap. `public_only` (default: whether this runs inside `public_addresses_only()`)
    connects to public addresses only, checked as it connects, and ignores proxy settings (the
    address connected to must be the one checked)."""
    import httpx

    if public_only is None:
        public_only = _PUBLIC_ONLY.get()
    client = httpx.Client(
        follow_redirects=False,
        timeout=httpx.Timeout(timeout_s),
        headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
        transport=public_transport() if public_only else None,
        trust_env=not public_only,
    )
    return Fetcher(client, timeout_s=timeout_s, max_bytes=max_bytes)


def public_transport() -> httpx.HTTPTransport:
    """httpx's transport with its connection pool on `PublicOnlyBackend`. httpx has no option
    for a network backend, so its pool is replaced: tests/index/test_fetch_guard.py fails if a
    new httpx stops using it."""
    import httpcore
    import httpx

    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=cast("httpcore.NetworkBackend", PublicOnlyBackend()),
    )
    return transport


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """The media type (lower case) and charset of a Content-Type header value."""
    if not value:
        return "", None
    media_type, *params = (part.strip() for part in value.split(";"))
    charset = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "charset" and raw.strip(" \"'"):
            charset = raw.strip(" \"'")
    return media_type.lower(), charset


def looks_like_feed(page: Page) -> bool:
    """Whether a fetched document is an RSS/Atom feed, by content type or by its root element."""
    if page.media_type in FEED_TYPES - {"application/xml", "text/xml"}:
        return True
    head = page.body[:2048].lstrip(b"\xef\xbb\xbf")
    return bool(_FEED_ROOT.match(head))


def parse_feed(page: Page) -> Feed:
    """The entries of an RSS or Atom feed; `FetchError` when the document is not a feed."""
    import feedparser

    parsed: Any = feedparser.parse(
        io.BytesIO(page.body),
        response_headers={
            "content-location": page.url,
            "content-type": page.media_type + (f"; charset={page.charset}" if page.charset else ""),
        },
    )
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        detail = f" ({problem})" if problem else ""
        raise FetchError(f"not an RSS or Atom feed{detail}")
    feed = parsed.get("feed", {})
    entries = tuple(_feed_entry(raw) for raw in parsed.get("entries", []))
    return Feed(url=page.url, title=_clean(feed.get("title")), entries=entries)


def html_fragment_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, paragraphs on new lines."""
    parser = _TextParser()
    parser.feed(fragment)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _feed_entry(raw: Any) -> FeedEntry:
    contents = [c.get("value", "") for c in raw.get("content", []) if c.get("value")]
    fragment = max(contents, key=len) if contents else str(raw.get("summary") or "")
    authors = [str(a.get("name", "")).strip() for a in raw.get("authors", []) if a.get("name")]
    if not authors and raw.get("author"):
        authors = [str(raw["author"]).strip()]
    when = raw.get("published_parsed") or raw.get("updated_parsed")
    return FeedEntry(
        link=_clean(raw.get("link")),
        title=_clean(raw.get("title")),
        published=dt.date(*when[:3]).isoformat() if when else None,
        authors=tuple(a for a in authors if a),
        text=html_fragment_text(fragment),
    )


def _clean(value: object) -> str | None:
    text = " ".join(str(value or "").split())
    return text or None


class _TextParser(HTMLParser):
    _BLOCKS = frozenset({"p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr"})
    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

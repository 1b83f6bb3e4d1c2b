"""Sources: folders of article files, page URLs and RSS/Atom feed URLs (`index.fetch`).

`load_sources` reads them all, checks every article, merges near-duplicates (`index.dedup`) and
gives a reason for every input it rejects; it never raises for bad input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ParamSpec

from index.dedup import DEFAULT_THRESHOLD, SignatureCache, merge_duplicates
from index.fetch import (
    FEED_TYPES,
    HTML_TYPES,
    PDF_TYPES,
    Feed,
    FeedEntry,
    Fetcher,
    FetchError,
    Page,
    looks_like_feed,
    open_fetcher,
    parse_feed,
)
from index.formats import load_file, parse_html_article, parse_pdf_article
from index.types import Article, LoadResult, Rejection, article_problem, content_id, printable

log = logging.getLogger(__name__)
_P = ParamSpec("_P")

# A feed entry whose page cannot be fetched is indexed from the feed's own text only when the feed
# carries at least this much of it (a one-sentence teaser is not an article).
MIN_FEED_TEXT_CHARS = 300
_URL_SCHEME = re.compile(r"\A([A-Za-z][A-Za-z0-9+.\-]*)://")
# Files that document a corpus folder rather than belong to it.
IGNORED_STEMS = ("readme", "license", "licence", "notice")


def load_sources(
    sources: Sequence[str | Path],
    *,
    timeout_s: float = 20.0,
    max_bytes: int = 20_000_000,
    dedup: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    signatures: SignatureCache | None = None,
) -> LoadResult:
    """Read every source: a file, a folder (recursively), a page URL or an RSS/Atom feed URL.

    Near-duplicates among everything read are merged (`dedup`, Jaccard ≥ `threshold` on word
    5-shingles; `signatures` keeps the texts' MinHash signatures between runs). Bad input becomes
    a `Rejection` with a reason; nothing is raised for it.
    """
    items: list[Article | Rejection] = []
    fetcher: Fetcher | None = None
    try:
        for source in sources:
            text = str(source)
            scheme = _URL_SCHEME.match(text) if isinstance(source, str) else None
            if scheme is None:
                items.extend(_guarded(text, _load_path, Path(source)))
            elif scheme.group(1).lower() not in ("http", "https"):
                reason = f"unsupported URL scheme {scheme.group(1)}://; use http(s):// or a path"
                items.append(Rejection(text, reason))
            else:
                if fetcher is None:
                    fetcher = open_fetcher(timeout_s=timeout_s, max_bytes=max_bytes)
                items.extend(_guarded(text, load_url, text, fetcher))
    finally:
        if fetcher is not None:
            fetcher.close()
    items = [_checked(item) for item in items]
    articles = [item for item in items if isinstance(item, Article)]
    rejected = tuple(item for item in items if isinstance(item, Rejection))
    if not dedup:
        return LoadResult(articles=tuple(articles), rejected=rejected)
    kept, duplicates = merge_duplicates(articles, threshold=threshold, signatures=signatures)
    return LoadResult(articles=kept, rejected=rejected, duplicates=duplicates)


def load_articles(source: Path, *, dedup: bool = True) -> LoadResult:
    """Read every supported article under `source` (a file or a folder, searched recursively)."""
    return load_sources([source], dedup=dedup)


def load_url(url: str, fetcher: Fetcher) -> Iterator[Article | Rejection]:
    """The article at a page URL, or one article (or rejection) per entry of a feed URL."""
    try:
        page = fetcher.get(url, accept=HTML_TYPES | FEED_TYPES | PDF_TYPES)
    except FetchError as e:
        yield Rejection(url, str(e))
        return
    if looks_like_feed(page):
        try:
            feed = parse_feed(page)
        except FetchError as e:
            yield Rejection(url, str(e))
            return
        if not feed.entries:
            yield Rejection(url, "the feed has no entries")
        for number, entry in enumerate(feed.entries, start=1):
            where = entry.link or f"{url}#{number}"
            yield from _guarded(where, _load_feed_entry, entry, feed, fetcher, where)
        return
    try:
        yield _page_article(page, origin=url)
    except ValueError as e:
        yield Rejection(url, str(e))


def _page_article(page: Page, *, origin: str) -> Article:
    if page.media_type in PDF_TYPES:
        name = page.url.rsplit("/", 1)[-1]
        return parse_pdf_article(page.body, name=name, origin=origin, url=page.url)
    if page.media_type in HTML_TYPES:
        return parse_html_article(page.decoded(), origin=origin, url=page.url)
    raise ValueError(f"the {page.media_type} document is not an RSS or Atom feed")


def _load_feed_entry(
    entry: FeedEntry, feed: Feed, fetcher: Fetcher, origin: str
) -> Iterator[Article | Rejection]:
    """The entry's linked page as an article, completed from the feed; else the feed's own text."""
    if entry.link is None:
        problem = "the entry has no link"
    else:
        try:
            page = fetcher.get(entry.link, accept=HTML_TYPES | PDF_TYPES)
            found = _page_article(page, origin=origin)
        except (FetchError, ValueError) as e:
            problem = f"its page could not be read ({e})"
        else:
            title = entry.title or found.title
            yield replace(
                found,
                id=content_id(title, found.text),
                title=title,
                source=found.source or feed.title,
                published=found.published or entry.published,
                authors=found.authors or entry.authors,
            )
            return
    if len(entry.text) < MIN_FEED_TEXT_CHARS:
        yield Rejection(
            origin,
            f"{problem}, and the feed gives only {len(entry.text)} characters of its text "
            f"(at least {MIN_FEED_TEXT_CHARS} needed)",
        )
        return
    title = entry.title or entry.text.splitlines()[0][:120]
    yield Article(
        id=content_id(title, entry.text),
        title=title,
        text=entry.text,
        source=feed.title,
        url=entry.link,
        published=entry.published,
        authors=entry.authors,
        origin=origin,
    )


def _load_path(source: Path) -> Iterator[Article | Rejection]:
    if not source.exists():
        yield Rejection(str(source), "no such file or folder")
        return
    for path in iter_article_files(source):
        yield from _guarded(str(path), load_file, path)


def _checked(item: Article | Rejection) -> Article | Rejection:
    """The article, or its rejection when `article_problem` finds one; rejections printable."""
    if isinstance(item, Rejection):
        return Rejection(printable(item.origin), printable(item.reason))
    problem = article_problem(item)
    return item if problem is None else Rejection(printable(item.origin), problem)


def _guarded(
    origin: str,
    load: Callable[_P, Iterator[Article | Rejection]],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> list[Article | Rejection]:
    """Everything `load` yields; an unexpected error becomes a rejection instead of escaping."""
    try:
        return list(load(*args, **kwargs))
    except Exception as e:  # a parser library failing on odd input must not stop the load
        log.warning("Unexpected error while reading %s", origin, exc_info=True)
        return [Rejection(origin, f"could not be read ({e.__class__.__name__}: {e})")]


def iter_article_files(source: Path) -> Iterator[Path]:
    """The files to read under `source`, sorted; hidden files and README/LICENSE are skipped."""
    if source.is_file():
        yield source
        return
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.stem.lower() in IGNORED_STEMS:
            continue
        yield path

"""Article and the loaders that turn files, web pages and feeds into articles.

Supported: `.txt` and `.md` (title on the first line, optional YAML front matter with `published`,
`source`, `url`, `author`), `.html`/`.htm` (main text extracted by trafilatura), `.pdf` (text of
every page, by pypdf), `.jsonl`/`.json` in the evaluation schema (`id`, `title`, `text`, `source`,
`url`, `published`, `authors`), and `http(s)://` URLs of pages or RSS/Atom feeds (`index.fetch`).
`load_sources` reads them all, merges near-duplicates (`index.dedup`) and gives a reason for every
input it rejects; it never raises for bad input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ParamSpec

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from index.dedup import DEFAULT_THRESHOLD, Candidate, find_duplicates
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

log = logging.getLogger(__name__)
_P = ParamSpec("_P")

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl", ".json")
# A feed entry whose page cannot be fetched is indexed from the feed's own text only when the feed
# carries at least this much of it (a one-sentence teaser is not an article).
MIN_FEED_TEXT_CHARS = 300
_URL_SCHEME = re.compile(r"\A([A-Za-z][A-Za-z0-9+.\-]*)://")
# Files that document a corpus folder rather than belong to it.
IGNORED_STEMS = ("readme", "license", "licence", "notice")
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Article:
    """One news article: its text and what is known about where it came from."""

    id: str
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    published: str | None = None  # ISO date, YYYY-MM-DD
    authors: tuple[str, ...] = ()
    origin: str = ""  # file (and line) or URL the article was read from
    # Near-duplicate copies merged into this one, as "Outlet <url>" (or their origin) each.
    other_sources: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """Changes whenever anything indexed about the article changes (not its origin)."""
        return content_id(
            self.title,
            self.text,
            self.source or "",
            self.url or "",
            self.published or "",
            "\x1e".join(self.authors),
            "\x1e".join(self.other_sources),
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that was not indexed, and why."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An input that was not indexed because it repeats an article that was."""

    origin: str  # where the dropped copy came from
    kept_id: str  # id of the article that was kept (indexed)
    similarity: float  # Jaccard similarity of the two texts' word 5-shingles


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load read: unique articles (duplicates merged in), rejected inputs, duplicates."""

    articles: tuple[Article, ...] = ()
    rejected: tuple[Rejection, ...] = field(default=())
    duplicates: tuple[Duplicate, ...] = ()

    @property
    def inputs(self) -> int:
        """Everything read: articles, rejections and duplicates together."""
        return len(self.articles) + len(self.rejected) + len(self.duplicates)


def content_id(*parts: str) -> str:
    """A stable id from content: the first 16 hex digits of a SHA-256. Never raises: a lone
    surrogate (from a JSON escape) is hashed as is, and `article_problem` rejects the article."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:16]


def article_problem(article: Article) -> str | None:
    """Why an article that was read cannot be indexed, or None: a file name or a field that is not
    valid Unicode (a lone surrogate, which nothing downstream can encode), or no readable text."""
    if _SURROGATE.search(article.origin):
        return "the file name is not valid UTF-8; rename the file and retry"
    fields = {
        "id": article.id,
        "title": article.title,
        "text": article.text,
        "source": article.source or "",
        "url": article.url or "",
        "published": article.published or "",
        "authors": "".join(article.authors),
    }
    broken = [name for name, value in fields.items() if _SURROGATE.search(value)]
    if broken:
        return (
            f"not valid Unicode text in {', '.join(broken)} (a lone surrogate, such as a JSON "
            "\\ud800 escape with no pair); fix the text and retry"
        )
    if not any(c.isalnum() for c in article.text):
        return "no readable text (only spaces, punctuation or invisible characters)"
    return None


def printable(text: str) -> str:
    """`text` with lone surrogates (undecodable file-name bytes) written as escapes, so that a
    report can always be printed and stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def normalize_date(value: object) -> str | None:
    """An ISO `YYYY-MM-DD` date from a date, datetime or date-like string; None if unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return None


class _AliasError(yaml.YAMLError):
    """Front matter that uses a YAML alias."""


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML without aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _AliasError("alias")
        return super().compose_node(parent, index)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split optional YAML front matter (between `---` lines) from the rest of the text."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.load(match.group(1), Loader=_FrontMatterLoader) or {}
    except _AliasError as e:
        raise ValueError("front matter uses YAML aliases (*name), which are not allowed") from e
    except yaml.YAMLError as e:
        raise ValueError(f"front matter is not valid YAML ({e.__class__.__name__})") from e
    if not isinstance(meta, dict):
        raise ValueError("front matter must be `key: value` lines")
    return {str(k).lower(): v for k, v in meta.items()}, text[match.end() :]


def parse_plain_article(text: str, *, name: str, origin: str) -> Article:
    """An article from plain text or Markdown: front matter, a title line, then the body."""
    meta, rest = split_front_matter(text)
    lines = rest.strip().splitlines()
    if not lines:
        raise ValueError("the file is empty")
    title = str(meta.get("title") or lines[0].lstrip("#").strip())
    body_lines = lines if meta.get("title") else lines[1:]
    body = "\n".join(body_lines).strip()
    if not body:
        raise ValueError("the file has a title line but no article text")
    name_date = _DATE_IN_NAME.search(name)
    published = normalize_date(meta.get("published") or meta.get("date")) or (
        normalize_date(name_date.group(1)) if name_date else None
    )
    authors = meta.get("authors") or meta.get("author") or ()
    return Article(
        id=str(meta.get("id") or content_id(title, body)),
        title=title,
        text=body,
        source=_str_or_none(meta.get("source")),
        url=_str_or_none(meta.get("url")),
        published=published,
        authors=_as_tuple(authors),
        origin=origin,
    )


def parse_html_article(html: str | bytes, *, origin: str, url: str | None = None) -> Article:
    """An article from an HTML page: its main text and metadata, without menus or footers.

    `url` is where the page was fetched from; the page's canonical URL wins when it names one.
    """
    import trafilatura  # heavy; imported only when an HTML page is read

    found = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    doc: dict[str, Any] = {} if found is None or isinstance(found, dict) else found.as_dict()
    text = str(doc.get("text") or "").strip()
    if not text:
        raise ValueError("no article text found in the HTML page")
    title = str(doc.get("title") or "").strip() or text.splitlines()[0][:120]
    text = drop_title_line(text, title) or text
    author = str(doc.get("author") or "")
    return Article(
        id=content_id(title, text),
        title=title,
        text=text,
        source=_str_or_none(doc.get("sitename") or doc.get("hostname")),
        url=_str_or_none(doc.get("url")) or url,
        published=normalize_date(doc.get("date")),
        authors=_as_tuple(author.split(";")),
        origin=origin,
    )


def parse_pdf_article(data: bytes, *, name: str, origin: str, url: str | None = None) -> Article:
    """An article from a PDF: the text of every page; the title from metadata or the first line."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("the PDF is encrypted; save an unencrypted copy and retry")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        meta_title = _str_or_none(meta.title if meta else None)
        meta_author = str(meta.author or "") if meta else ""
        created = _pdf_date(meta)
    except PyPdfError as e:
        raise ValueError(f"not a readable PDF ({e})") from e
    text = clean_pdf_text(pages)
    if not text:
        raise ValueError(
            "no extractable text in the PDF (it may be a scanned image); "
            "run OCR on it, or save it with a text layer, and retry"
        )
    if meta_title:
        title, body = meta_title, drop_title_line(text, meta_title)
    else:
        title, _, body = text.partition("\n")
        title, body = title.strip(), body.strip()
    if not body:
        raise ValueError("the PDF has a title line but no article text")
    name_date = _DATE_IN_NAME.search(name)
    return Article(
        id=content_id(title, body),
        title=title,
        text=body,
        url=url,
        published=(normalize_date(name_date.group(1)) if name_date else None) or created,
        authors=_as_tuple(meta_author.split(";")),
        origin=origin,
    )


def drop_title_line(text: str, title: str) -> str:
    """The text without its first line when that line only repeats the title (the headline)."""
    first, _, rest = text.lstrip().partition("\n")
    if " ".join(first.split()).casefold() == " ".join(title.split()).casefold():
        return rest.strip()
    return text


def clean_pdf_text(pages: Sequence[str]) -> str:
    """The pages' text joined by blank lines, trailing spaces and runs of blank lines removed."""
    cleaned = []
    for page in pages:
        lines = [line.rstrip() for line in page.replace("\x00", "").splitlines()]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            cleaned.append(text)
    return "\n\n".join(cleaned)


def _pdf_date(meta: Any) -> str | None:
    try:
        return normalize_date(meta.creation_date) if meta is not None else None
    except (ValueError, TypeError):  # a malformed /CreationDate
        return None


class ArticleRecord(BaseModel):
    """One article in the JSON Lines schema (the schema of the evaluation data)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    published: str | None = None
    authors: list[str] = []

    @field_validator("title", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def to_article(self, origin: str) -> Article:
        return Article(
            id=self.id or content_id(self.title, self.text),
            title=self.title.strip(),
            text=self.text,
            source=self.source or None,
            url=self.url or None,
            published=normalize_date(self.published),
            authors=tuple(self.authors),
            origin=origin,
        )


def parse_record(raw: object, *, origin: str) -> Article:
    """An article from one decoded JSON object, with a readable reason when it is invalid."""
    try:
        return ArticleRecord.model_validate(raw).to_article(origin)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
            for err in e.errors()
        )
        raise ValueError(problems) from e


def decode_text(data: bytes) -> str:
    """UTF-8 text (a byte-order mark is allowed); anything else is a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"not UTF-8 text (bad byte at offset {e.start}); save the file as UTF-8 and retry"
        ) from e


def load_sources(
    sources: Sequence[str | Path],
    *,
    timeout_s: float = 20.0,
    max_bytes: int = 20_000_000,
    dedup: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
) -> LoadResult:
    """Read every source: a file, a folder (recursively), a page URL or an RSS/Atom feed URL.

    Near-duplicates among everything read are merged (`dedup`, Jaccard ≥ `threshold` on word
    5-shingles). Bad input becomes a `Rejection` with a reason; nothing is raised for it.
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
    kept, duplicates = merge_duplicates(articles, threshold=threshold)
    return LoadResult(articles=kept, rejected=rejected, duplicates=duplicates)


def load_articles(source: Path, *, dedup: bool = True) -> LoadResult:
    """Read every supported article under `source` (a file or a folder, searched recursively)."""
    return load_sources([source], dedup=dedup)


def merge_duplicates(
    articles: Sequence[Article], *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[tuple[Article, ...], tuple[Duplicate, ...]]:
    """The unique articles, in input order, each listing its dropped copies; and the copies."""
    candidates = [
        Candidate(key=str(i), text=a.text, published=a.published, article_id=a.id)
        for i, a in enumerate(articles)
    ]
    matches = find_duplicates(candidates, threshold=threshold)
    merged: dict[int, list[str]] = {}
    duplicates = []
    for match in matches:
        copy, kept = articles[int(match.key)], articles[int(match.kept_key)]
        labels = merged.setdefault(int(match.kept_key), list(kept.other_sources))
        for label in (source_label(copy), *copy.other_sources):
            if label != source_label(kept) and label not in labels:
                labels.append(label)
        duplicates.append(Duplicate(copy.origin, kept.id, round(match.similarity, 4)))
    dropped = {int(m.key) for m in matches}
    unique = tuple(
        replace(a, other_sources=tuple(merged[i])) if i in merged else a
        for i, a in enumerate(articles)
        if i not in dropped
    )
    return unique, tuple(duplicates)


def source_label(article: Article) -> str:
    """How a copy is named in `other_sources`: "Outlet <url>", either part alone, or its origin."""
    parts = [article.source or "", f"<{article.url}>" if article.url else ""]
    return " ".join(p for p in parts if p) or article.origin


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
        except ValueError as e:  # FetchError is a ValueError
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


def load_file(path: Path) -> Iterator[Article | Rejection]:
    """The articles in one file, or a rejection for each part that could not be read."""
    suffix = path.suffix.lower()
    origin = str(path)
    if suffix not in SUPPORTED_SUFFIXES:
        yield Rejection(
            origin,
            f"unsupported file type {suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}",
        )
        return
    try:
        data = path.read_bytes()
        if suffix == ".pdf":
            yield parse_pdf_article(data, name=path.name, origin=origin)
            return
        text = decode_text(data)
    except (OSError, ValueError) as e:
        yield Rejection(origin, _reason(e))
        return
    if suffix == ".jsonl":
        yield from _load_jsonl(text, origin)
        return
    try:
        if suffix == ".json":
            yield from _load_json(text, origin)
        elif suffix in (".html", ".htm"):
            yield parse_html_article(text, origin=origin)
        else:
            yield parse_plain_article(text, name=path.name, origin=origin)
    except ValueError as e:
        yield Rejection(origin, _reason(e))


def _load_jsonl(text: str, origin: str) -> Iterator[Article | Rejection]:
    if not text.strip():  # every input is accounted for: an empty file too
        yield Rejection(origin, "the file is empty")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            yield parse_record(json.loads(line), origin=where)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            yield Rejection(where, _reason(e))


def _load_json(text: str, origin: str) -> Iterator[Article | Rejection]:
    try:
        data = json.loads(text)
    except ValueError as e:
        yield Rejection(origin, _reason(e))
        return
    records = data if isinstance(data, list) else [data]
    if not records:
        yield Rejection(origin, "the JSON list holds no articles")
    for number, raw in enumerate(records, start=1):
        where = f"{origin}#{number}" if isinstance(data, list) else origin
        try:
            yield parse_record(raw, origin=where)
        except ValueError as e:
            yield Rejection(where, _reason(e))


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON ({error.msg} at column {error.colno})"
    if isinstance(error, OSError):
        return f"cannot read the file ({error.strerror or error})"
    return str(error)


def _str_or_none(value: object) -> str | None:
    return str(value).strip() or None if value not in (None, "") else None


def _as_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return ()

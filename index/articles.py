"""Article and the loaders that turn files into articles, with a reason for every rejection.

Supported: `.txt` and `.md` (title on the first line, optional YAML front matter with `published`,
`source`, `url`, `author`), `.html`/`.htm` (main text extracted by trafilatura) and `.jsonl`/`.json`
in the evaluation schema (`id`, `title`, `text`, `source`, `url`, `published`, `authors`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl", ".json")
# Files that document a corpus folder rather than belong to it.
IGNORED_STEMS = ("readme", "license", "licence", "notice")
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


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
    origin: str = ""  # file (and line) the article was read from


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that was not indexed, and why."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What `load_articles` read: the accepted articles and every rejected input."""

    articles: tuple[Article, ...] = ()
    rejected: tuple[Rejection, ...] = field(default=())


def content_id(*parts: str) -> str:
    """A stable id from content: the first 16 hex digits of a SHA-256."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


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


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split optional YAML front matter (between `---` lines) from the rest of the text."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
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


def parse_html_article(html: str, *, origin: str) -> Article:
    """An article from an HTML page: its main text and metadata, without menus or footers."""
    import trafilatura  # heavy; imported only when an HTML file is read

    found = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, as_dict=True
    )
    doc: dict[str, Any] = found if isinstance(found, dict) else {}
    text = str(doc.get("text") or "").strip()
    if not text:
        raise ValueError("no article text found in the HTML page")
    title = str(doc.get("title") or "").strip() or text.splitlines()[0][:120]
    author = str(doc.get("author") or "")
    return Article(
        id=content_id(title, text),
        title=title,
        text=text,
        source=_str_or_none(doc.get("sitename") or doc.get("hostname")),
        url=_str_or_none(doc.get("url")),
        published=normalize_date(doc.get("date")),
        authors=_as_tuple(author.split(";")),
        origin=origin,
    )


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


def load_articles(source: Path) -> LoadResult:
    """Read every supported article under `source` (a file or a folder, searched recursively)."""
    if not source.exists():
        return LoadResult(rejected=(Rejection(str(source), "no such file or folder"),))
    articles: list[Article] = []
    rejected: list[Rejection] = []
    for path in iter_article_files(source):
        for item in load_file(path):
            if isinstance(item, Article):
                articles.append(item)
            else:
                rejected.append(item)
    return LoadResult(articles=tuple(articles), rejected=tuple(rejected))


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
        text = decode_text(path.read_bytes())
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

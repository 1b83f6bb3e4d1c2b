"""The article domain: `Article`, what a load read (`LoadResult`, `Rejection`, `Duplicate`) and
pure helpers about articles (content ids, validity checks, dates). No vendor library here."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTENT_ID = re.compile(r"[0-9a-f]{16}")


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


def has_content_id(article: Article) -> bool:
    """Whether the article's id was made from its title and text (no id of its own was given)."""
    return article.id == content_id(article.title, article.text)


def looks_like_content_id(article_id: str) -> bool:
    """Whether an id of an indexed article has the form `content_id` gives (16 hex digits): the
    build record keeps no more, so an id of the article's own of that form is taken as made."""
    return _CONTENT_ID.fullmatch(article_id) is not None


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


def day_number(value: object) -> int | None:
    """A date as the number `YYYYMMDD` (how the index stores publication days, so that a date
    range is a numeric range); None if unknown."""
    day = normalize_date(value)
    return int(day.replace("-", "")) if day else None


@dataclass(frozen=True, slots=True)
class DayRange:
    """Publication days a search keeps, both ends included, as `YYYYMMDD` numbers (None: no
    bound); chunks of unknown date (stored as day 0) are kept only when `undated` says so."""

    first: int | None = None
    last: int | None = None
    undated: bool = False

    @property
    def bounded(self) -> bool:
        return self.first is not None or self.last is not None

    @property
    def lowest(self) -> int:
        """The smallest stored day kept: 0 lets chunks of unknown date through."""
        if self.first is not None:
            return self.first
        return 0 if self.undated else 1

    def allows(self, day: int | None) -> bool:
        if not self.bounded:
            return True
        day = day or 0
        return day >= self.lowest and (self.last is None or day <= self.last)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of one article; `start`/`end` are character offsets into `Article.text`."""

    id: str
    article_id: str
    index: int
    text: str
    start: int
    end: int
    title: str
    source: str | None = None
    url: str | None = None
    published: str | None = None
    other_sources: tuple[str, ...] = ()  # the article's merged near-duplicate copies

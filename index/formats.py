"""File formats: each turns the bytes of one file (or fetched document) into articles.

Supported: `.txt` and `.md` (title on the first line, optional YAML front matter with `published`,
`source`, `url`, `author`), `.html`/`.htm` (main text extracted by trafilatura), `.pdf` (text of
every page, by pypdf) and `.jsonl`/`.json` in the evaluation schema (`id`, `title`, `text`,
`source`, `url`, `published`, `authors`). `load_file` reads one file and gives a reason for every
part it rejects; it never raises for bad input.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from index.types import Article, Rejection, content_id, normalize_date

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl", ".json")
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


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


def article_json(article: Article) -> dict[str, Any]:
    """An article as one record of the JSON schema `ArticleRecord` reads (its origin aside)."""
    return {
        "id": article.id,
        "title": article.title,
        "text": article.text,
        "source": article.source,
        "url": article.url,
        "published": article.published,
        "authors": list(article.authors),
    }


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

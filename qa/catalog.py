"""What the index holds, as the web page shows it, and adding articles to it from the page.

`index_status` and `example_questions` read the live build. `add_articles` saves uploaded files,
and the articles of fetched URLs as `.json` files, into the upload folder
(`CITEQA_ARTICLES_DIR/uploads/`), then syncs the index with `CITEQA_ARTICLES_DIR` exactly as
`python -m index sync` does, under the same writer lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from index.build import StepProgress, update_index
from index.fetch import public_addresses_only
from index.formats import SUPPORTED_SUFFIXES, article_json
from index.manifest import Manifest
from index.plan import IndexReport
from index.reader import Store
from index.sources import load_sources
from index.stored import IndexStats
from index.types import Article, Rejection
from qa.config import Settings
from qa.errors import UploadError
from qa.retrieval import PassageRetriever

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IndexReport",
    "IndexStats",
    "Rejection",
    "UploadResult",
    "add_articles",
    "example_questions",
    "index_status",
    "is_loopback_host",
    "upload_folder",
]

log = logging.getLogger(__name__)

UPLOAD_FOLDER = "uploads"
READING = "Reading articles"  # the step shown before `update_index` reports its own
EXAMPLE_SAMPLE = 24  # articles looked at to pick example questions (bounded work on big indexes)
MAX_TITLE_CHARS = 60  # of a headline quoted in an example question
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_ORIGIN_SUFFIX = re.compile(r"(?::\d+|#\d+)$")  # "file.jsonl:3", "file.json#2"
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What an upload did: the files saved into the upload folder, the inputs refused before
    indexing (type, size, a failed fetch) and the sync's report (None when nothing was saved)."""

    saved: tuple[str, ...]
    rejected: tuple[Rejection, ...]
    report: IndexReport | None


def upload_folder(settings: Settings) -> Path:
    """Where the web page saves uploads: inside the articles folder, so that `python -m index
    sync` (whose default source is that folder) keeps them."""
    return settings.articles_dir / UPLOAD_FOLDER


def index_status(store: Store) -> IndexStats:
    """Articles, chunks, outlets, build time and embedding model of the live build."""
    store.refresh()
    return store.stats()


def example_questions(store: Store, count: int = 3) -> list[str]:
    """Questions about indexed articles, newest first: a few articles (a stable sample of at most
    `EXAMPLE_SAMPLE`) each give one question made from its title."""
    store.refresh()
    articles = store.manifest.articles
    sample = sorted(articles)[:EXAMPLE_SAMPLE]
    first_chunks = [articles[a].chunk_ids[0] for a in sample if articles[a].chunk_ids]
    chunks = [chunk for chunk, _ in store.get(first_chunks).values()]
    chunks.sort(key=lambda c: (c.published or "", c.title), reverse=True)
    questions: list[str] = []
    for chunk in chunks:
        question = question_from_title(chunk.title)
        if question and question not in questions:
            questions.append(question)
        if len(questions) == count:
            break
    return questions


def question_from_title(title: str) -> str | None:
    """A question a reader might ask about an article with this title (None for no title):
    about the topic for a name ("Super Bowl 50"), about the report for a headline."""
    title = " ".join(title.split()).strip(" .")
    if not title:
        return None
    words = title.split()
    if len(words) <= 3 or all(not w[:1].islower() for w in words if len(w) > 3):
        return f"What do the articles say about {title}?"
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + "…"
    return f"What does “{title}” report?"


def add_articles(
    settings: Settings,
    retriever: PassageRetriever,
    files: Sequence[Path],
    urls: Sequence[str],
    progress: StepProgress | None = None,
    *,
    allow_private_urls: bool = True,
) -> UploadResult:
    """Save `files` and the articles at `urls` into the upload folder, then sync the index with
    the articles folder. Inputs that cannot be used are refused with a reason; when the sync
    fails, the files saved for it are removed again and the index is unchanged.

    `allow_private_urls=False` refuses URLs whose host is (or resolves to) a loopback, private,
    link-local or reserved address, for a page exposed on a network: checked here first, then
    again by the fetcher at every connection it makes (each redirect's included), on the address
    it actually connects to.
    """
    check_origins(retriever.store.manifest, settings.articles_dir)
    folder = upload_folder(settings)
    rejected: list[Rejection] = []
    saved: list[Path] = []
    created: list[Path] = []  # saved files that were not there before (the same upload twice
    # is the same file, which the index may already hold)

    def keep(path: Path, data: bytes) -> None:
        target = folder / file_name(path.name, data)
        if not target.exists():
            created.append(target)
        saved.append(save_bytes(target, data))

    if progress is not None:
        progress(READING, 0, len(files) + len(urls))
    for path in files:
        refusal = check_file(path, settings.max_upload_mb)
        if refusal is None:
            keep(path, path.read_bytes())
        else:
            rejected.append(Rejection(path.name, refusal))
    for url in urls:
        refusal = check_url(url, allow_private_urls)
        if refusal is not None:
            rejected.append(Rejection(url, refusal))
            continue
        fetching = contextlib.nullcontext() if allow_private_urls else public_addresses_only()
        with fetching:
            result = load_sources([url], dedup=False, max_bytes=settings.max_upload_mb * 1_000_000)
        rejected.extend(result.rejected)
        for article in result.articles:
            keep(Path(f"{article.title[:60]}.json"), article_record(article))
    if not saved:
        return UploadResult((), tuple(rejected), None)
    try:
        report = update_index(
            settings, retriever.embedder, [settings.articles_dir], mode="sync", steps=progress
        )
    except BaseException:
        remove_files(created)
        raise
    retriever.store.refresh(force=True)
    used = used_files(retriever.store.manifest, report)
    unread = [p for p in created if p.resolve() not in used]  # every article in it rejected
    remove_files(unread)
    names = tuple(dict.fromkeys(p.name for p in saved if p not in unread))
    return UploadResult(names, (*rejected, *report.rejected), report)


def check_origins(manifest: Manifest, articles_dir: Path) -> None:
    """`UploadError` if the index holds articles read from outside `articles_dir` (other
    folders, URLs): a sync with that folder would drop them."""
    outside = [e.origin for e in manifest.articles.values() if not inside(e.origin, articles_dir)]
    if outside:
        raise UploadError(
            f"The index holds {len(outside)} article(s) read from outside the articles folder "
            f"{articles_dir} (e.g. {outside[0]}); adding articles from this page syncs the index "
            "with that folder and would drop them. Add articles with: python -m index sync "
            "--source ... (naming every source), or set CITEQA_ARTICLES_DIR to the folder the "
            "index was built from."
        )


def inside(origin: str, folder: Path) -> bool:
    """Whether an article's origin (a file, "file:line", "file#n" or a URL) lies in `folder`."""
    if not origin or _URL.match(origin):
        return False
    path = Path(_ORIGIN_SUFFIX.sub("", origin))
    return path.resolve().is_relative_to(folder.resolve())


def check_file(path: Path, max_mb: int) -> str | None:
    """Why an uploaded file cannot be indexed (type, size), or None."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return (
            f"unsupported file type {suffix or '(none)'}; supported: "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    size = path.stat().st_size
    if size > max_mb * 1_000_000:
        return f"{size / 1e6:.1f} MB is over the {max_mb} MB limit (CITEQA_MAX_UPLOAD_MB)"
    if size == 0:
        return "the file is empty"
    return None


def check_url(url: str, allow_private: bool) -> str | None:
    """Why `url` cannot be fetched from the page, or None: a first check, before any
    connection (the fetcher checks every address it connects to again)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    if allow_private:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, None)}
    except OSError:
        return f"the host {parts.hostname} cannot be resolved"
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            return (
                f"{parts.hostname} is a local or private address ({ip}); this page, open to the "
                "network, fetches public addresses only"
            )
    return None


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` keeps the page on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def file_name(name: str, data: bytes) -> str:
    """A safe, unique name for uploaded content: the original name's letters, digits, `.`, `_`
    and `-`, then a short hash of the content (the same upload twice is one file)."""
    original = Path(name)
    stem = _UNSAFE_NAME.sub("-", original.stem).strip("-.")[:80] or "article"
    digest = hashlib.sha256(data).hexdigest()[:8]
    return f"{stem}-{digest}{original.suffix.lower()}"


def save_bytes(target: Path, data: bytes) -> Path:
    """Write `data` to `target` atomically (readers never see a partial file: it is written
    under a hidden name, which loaders skip, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def article_record(article: Article) -> bytes:
    """An article read from a URL as a `.json` record, saved so that later syncs need no fetch."""
    return json.dumps(article_json(article), ensure_ascii=False, indent=1).encode("utf-8")


def used_files(manifest: Manifest, report: IndexReport) -> set[Path]:
    """The files that gave an indexed article or a merged duplicate."""
    origins = [e.origin for e in manifest.articles.values()]
    origins += [d.origin for d in report.duplicates]
    return {Path(_ORIGIN_SUFFIX.sub("", o)).resolve() for o in origins if not _URL.match(o)}


def remove_files(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:  # the sync already failed or the file is unused: only log
            log.warning("could not remove %s: %s", path, e)

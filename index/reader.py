"""Reading an index: open the live build after checking it is whole, follow each new build a
writer publishes, and query it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.backends import Backend, open_backend
from index.collection import PAGE, iterate_metadata, iterate_records, query_collection
from index.errors import CiteqaIndexError, IndexDamagedError, IndexNotBuiltError
from index.fingerprint import check_fingerprint
from index.keyword import KeywordIndex, build_keyword_index, load_keyword_index, save_keyword_index
from index.layout import REBUILD_HINT, IndexLayout, damaged
from index.manifest import ArticleEntry, IndexFingerprint, Manifest, load_manifest, save_manifest
from index.records import (
    ARTICLE_HASH,
    ARTICLE_ORIGIN,
    BUILT_AT,
    DAYS_INDEXED,
    LATEST_DAY,
    chunk_from_record,
    text_or_none,
)
from index.stored import IndexStats, RetrievedChunk, StoredChunk
from index.types import Chunk, DayRange

if TYPE_CHECKING:
    from index.backends import ChromaCollection, ClientAPI

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _OpenBuild:
    """A build a reader has open: its collection, record and (once asked for) keyword index."""

    build_id: str
    client: ClientAPI
    collection: ChromaCollection
    manifest: Manifest
    keyword: KeywordIndex | None = field(default=None)


class Store:
    """The live build of an index, for reading. Before each query it checks whether a writer
    published a new build (a `stat` of the pointer file, or at most one server request a second)
    and moves to it, so a long-running reader picks up `sync` and `rebuild` without a restart."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._expected: IndexFingerprint | None = None
        self._current = open_live(backend)
        self._retired: list[_OpenBuild] = []
        self._keyword: KeywordIndex | None = None  # handed out once; follows each new build

    @property
    def build_id(self) -> str:
        return self._current.build_id

    @property
    def fingerprint(self) -> IndexFingerprint:
        return self._current.manifest.fingerprint

    @property
    def manifest(self) -> Manifest:
        return self._current.manifest

    def check(self, expected: IndexFingerprint) -> None:
        """Raise `IndexMismatchError` unless the index was built the way `expected` says; later
        builds are held to the same."""
        check_fingerprint(self.fingerprint, expected)
        self._expected = expected

    def refresh(self, force: bool = False) -> bool:
        """Move to a newly published build, if there is one; True when it moved."""
        with self._lock:
            build_id = self._backend.poll(force)
            if build_id is None or build_id == self._current.build_id:
                return False
            try:
                new = open_build(self._backend, build_id)
            except IndexDamagedError:  # replaced again before we opened it
                new = open_live(self._backend)
            try:
                if self._expected is not None:
                    check_fingerprint(new.manifest.fingerprint, self._expected)
                if self._keyword is not None:
                    new.keyword = open_build_keyword_index(self._backend, new)
            except BaseException:
                self._backend.release(new.client)
                raise
            log.info("index: now reading build %s", new.build_id)
            if self._keyword is not None and new.keyword is not None:
                self._keyword.follow(new.keyword)
            self._retired.append(self._current)
            self._current = new
            # A query may still run on the build just replaced: release only older ones.
            while len(self._retired) > 1:
                self._backend.release(self._retired.pop(0).client)
            return True

    def close(self) -> None:
        with self._lock:
            for build in [*self._retired, self._current]:
                self._backend.release(build.client)
            self._retired = []

    def count(self) -> int:
        return self._current.manifest.chunks

    @property
    def days_indexed(self) -> bool:
        """Whether searches can keep a range of publication days inside the index (builds
        written before days were indexed cannot: their readers filter after the search)."""
        return bool((self._current.collection.metadata or {}).get(DAYS_INDEXED, False))

    @property
    def latest_day(self) -> int | None:
        """The newest publication day in the build (YYYYMMDD, 0: none dated); None if unknown."""
        value = (self._current.collection.metadata or {}).get(LATEST_DAY)
        return None if value is None else int(value)

    def query(
        self,
        vector: Sequence[float],
        k: int,
        exclude_articles: Collection[str] = (),
        *,
        days: DayRange | None = None,
        follow: bool = True,
    ) -> list[RetrievedChunk]:
        """The `k` chunks closest to `vector`, closest first, leaving out `exclude_articles` and
        chunks published outside `days`; from a newly published build, unless `follow` is off
        (a retriever that refreshed once for its question)."""
        if k <= 0:
            return []
        if follow:
            self.refresh()
        for attempt in (1, 2):
            build = self._current
            within = self._ids_within(build, days) if days is not None and days.bounded else None
            try:
                return query_collection(build.collection, vector, k, exclude_articles, days, within)
            except CiteqaIndexError:
                # The build may have been replaced under us.
                if attempt == 2 or not self.refresh(force=True):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _ids_within(self, build: _OpenBuild, days: DayRange) -> list[str] | None:
        """The ids of `build`'s chunks published within `days`, from its keyword index's day
        numbers (loaded once per build); None when they are not at hand (a server's build
        without local files), and Chroma's `where` filters instead."""
        with self._lock:
            if build.keyword is None:
                directory = self._backend.layout.keyword_dir(build.build_id)
                if not directory.exists():
                    return None
                build.keyword = open_build_keyword_index(self._backend, build)
            return build.keyword.ids_within(days)

    def get(
        self, chunk_ids: Sequence[str], *, follow: bool = True
    ) -> dict[str, tuple[Chunk, list[float]]]:
        """The chunks with these ids and their vectors (ids not in the index are left out); from
        a newly published build, unless `follow` is off."""
        if not chunk_ids:
            return {}
        if follow:
            self.refresh()
        found = self._current.collection.get(
            ids=list(chunk_ids), include=["documents", "metadatas", "embeddings"]
        )
        documents = found["documents"] or []
        metadatas = found["metadatas"] or []
        vectors = found["embeddings"] if found["embeddings"] is not None else []
        return {
            i: (chunk_from_record(i, d or "", dict(m or {})), [float(x) for x in v])
            for i, d, m, v in zip(found["ids"], documents, metadatas, vectors, strict=True)
        }

    def export(self, chunk_ids: Sequence[str]) -> Iterator[list[StoredChunk]]:
        """The chunks with these ids as stored (text, vector, metadata), a page at a time."""
        build = self._current
        for begin in range(0, len(chunk_ids), PAGE):
            page = list(chunk_ids[begin : begin + PAGE])
            found = build.collection.get(ids=page, include=["documents", "metadatas", "embeddings"])
            documents = found["documents"] or []
            metadatas = found["metadatas"] or []
            vectors = found["embeddings"] if found["embeddings"] is not None else []
            if len(found["ids"]) != len(page):
                raise damaged(
                    f"Build {build.build_id} lacks {len(page) - len(found['ids'])} chunk(s) "
                    "that its record lists"
                )
            yield [
                StoredChunk(chunk_from_record(i, d or "", dict(m or {})), list(v), dict(m or {}))
                for i, d, m, v in zip(found["ids"], documents, metadatas, vectors, strict=True)
            ]

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index of the build being read; the same object, moved to each new build."""
        self.refresh()
        with self._lock:
            build = self._current
            if build.keyword is None:
                build.keyword = open_build_keyword_index(self._backend, build)
            if self._keyword is None:
                self._keyword = build.keyword
            return self._keyword

    def stats(self) -> IndexStats:
        manifest = self._current.manifest
        return IndexStats(
            articles=len(manifest.articles),
            chunks=manifest.chunks,
            fingerprint=manifest.fingerprint,
            built_at=manifest.built_at,
            sources=manifest.sources(),
            build_id=manifest.build_id,
        )


def not_built(backend: Backend) -> IndexNotBuiltError:
    """The error for an index with no live build: how to build it."""
    if backend.legacy_index():
        return IndexNotBuiltError(
            f"The index at {backend.layout.index_dir} was made by an older citeqa. "
            f"Rebuild it with: {REBUILD_HINT} (then delete the old chroma.sqlite3, keyword/ "
            "and Chroma folders at the top of the index directory)"
        )
    return IndexNotBuiltError(
        f"No index at {backend.description}. Build it with: {REBUILD_HINT} --source articles/"
    )


def open_store(index_dir: Path, collection: str, chroma_url: str | None = None) -> Store:
    """Open the live build of an index for reading, after checking it is whole.

    `IndexNotBuiltError` if there is none; `IndexDamagedError` for a damaged pointer, database,
    build record or a build that is missing; `IndexServerError` if the server cannot be reached.
    """
    return Store(open_backend(IndexLayout(index_dir, collection), chroma_url))


def open_live(backend: Backend, attempts: int = 3) -> _OpenBuild:
    """Open the live build; if a writer replaces it meanwhile, open the new one."""
    for attempt in range(1, attempts + 1):
        build_id = backend.live_build()
        if build_id is None:
            raise not_built(backend)
        try:
            return open_build(backend, build_id)
        except IndexDamagedError:
            if attempt == attempts or backend.live_build() == build_id:
                raise
    raise AssertionError("unreachable")


def open_build(backend: Backend, build_id: str) -> _OpenBuild:
    """Open a build and check that its database, record and vectors agree."""
    client, collection = backend.open_collection(build_id)
    try:
        manifest = open_manifest(backend, build_id, collection)
        stored = IndexFingerprint.from_metadata(dict(collection.metadata or {}))
        if stored != manifest.fingerprint:
            raise damaged(f"Build {build_id}'s database and build record disagree")
        try:
            count = int(collection.count())
            probe = collection.get(limit=1, include=["embeddings"])
            if probe["embeddings"] is not None and len(probe["embeddings"]):
                collection.query(query_embeddings=np.asarray(probe["embeddings"][:1]), n_results=1)
        except Exception as e:  # chromadb raises many unrelated types
            raise damaged(f"The index build {build_id} is damaged ({e})") from e
        if count != manifest.chunks:
            raise damaged(
                f"Build {build_id} holds {count} chunks but its record lists {manifest.chunks}"
            )
    except BaseException:
        backend.release(client)
        raise
    return _OpenBuild(build_id, client, collection, manifest)


def open_manifest(backend: Backend, build_id: str, collection: ChromaCollection) -> Manifest:
    """The build's record; on a server, rebuilt from the chunks' metadata if not on this disk."""
    path = backend.layout.manifest_path(build_id)
    if backend.derived_files_required or path.exists():
        return load_manifest(path)
    fingerprint = IndexFingerprint.from_metadata(dict(collection.metadata or {}))
    if fingerprint is None:
        raise damaged(f"Collection {collection.name!r} has no build record")
    articles: dict[str, dict[str, Any]] = {}
    for chunk_id, meta in iterate_metadata(collection):
        entry = articles.setdefault(
            str(meta["article_id"]),
            {
                "hash": str(meta.get(ARTICLE_HASH, "")),
                "origin": str(meta.get(ARTICLE_ORIGIN, "")),
                "source": text_or_none(meta.get("source")),
                "chunks": [],
            },
        )
        entry["chunks"].append(chunk_id)
    manifest = Manifest(
        build_id=build_id,
        built_at=str((collection.metadata or {}).get(BUILT_AT, "")),
        fingerprint=fingerprint,
        articles={
            article_id: ArticleEntry(e["hash"], e["origin"], e["source"], tuple(e["chunks"]))
            for article_id, e in articles.items()
        },
    )
    save_cache(lambda: save_manifest(manifest, path))
    return manifest


def open_build_keyword_index(backend: Backend, build: _OpenBuild) -> KeywordIndex:
    """The build's keyword index; on a server, rebuilt from its chunks if not on this disk."""
    directory = backend.layout.keyword_dir(build.build_id)
    if backend.derived_files_required or directory.exists():
        return load_keyword_index(directory, build.manifest.chunks)
    chunks = [
        chunk_from_record(i, d, m)
        for i, d, m in iterate_records(build.collection, with_documents=True)
    ]
    keyword = build_keyword_index(chunks, build.manifest.fingerprint.embed_titles)
    save_cache(lambda: save_keyword_index(keyword, directory))
    return keyword


def save_cache(save: Callable[[], None]) -> None:
    """Keep a copy of derived data on this disk; losing the race to a writer's cleanup is fine."""
    try:
        save()
    except OSError as e:
        log.warning("could not keep a local copy of derived index data: %s", e)


def check_build_files(backend: Backend, manifest: Manifest) -> None:
    """Read-only checks of a build's files, without opening Chroma (which writes as it opens):
    the database's header, size and pages, and the keyword index. `IndexDamagedError` if bad."""
    backend.check_database(manifest.build_id)
    keyword = backend.layout.keyword_dir(manifest.build_id)
    if backend.derived_files_required or keyword.exists():
        load_keyword_index(keyword, manifest.chunks)

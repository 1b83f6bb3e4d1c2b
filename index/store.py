"""The Chroma store: open the live build, follow it when a writer publishes a new one, query it;
create, check and publish new builds; remove old ones.

This is the only module that imports chromadb. Vectors always come from the project's own
embedding model; Chroma's default embedding function (which downloads a model) is never used.
Chroma runs in one of two modes: a local directory per build (`index.layout`), published by
replacing a pointer file; or a Chroma server (`CITEQA_CHROMA_URL`), where each build is a collection
`<collection>__<build id>` and a small catalog collection `<collection>__live` names the live one.
Telemetry is off in both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

import numpy as np

from index.chunking import Chunk
from index.errors import (
    CiteqaIndexError,
    IndexDamagedError,
    IndexMismatchError,
    IndexNotBuiltError,
    IndexServerError,
    IndexWriteError,
)
from index.keyword import (
    KeywordIndex,
    build_keyword_index,
    load_keyword_index,
    save_keyword_index,
)
from index.layout import (
    REBUILD_HINT,
    IndexLayout,
    damaged,
    is_build_id,
    pointer_signature,
    read_pointer,
    remove_stale_files,
    write_pointer,
)
from index.manifest import ArticleEntry, IndexFingerprint, Manifest, load_manifest, save_manifest
from index.offline import enforce_offline

if TYPE_CHECKING:
    from chromadb import Where
    from chromadb.api import ClientAPI
    from chromadb.api.collection_configuration import CreateHNSWConfiguration
    from chromadb.api.models.Collection import Collection as ChromaCollection

__all__ = ["REBUILD_HINT", "IndexFingerprint", "IndexStats", "ScoredChunk", "Store", "open_store"]

log = logging.getLogger(__name__)

_PREFIX = "citeqa:"
# Chunk metadata beside `chunk_metadata`'s: what a manifest can be rebuilt from on another machine.
ARTICLE_HASH = "article_hash"
ARTICLE_ORIGIN = "article_origin"
CATALOG_SUFFIX = "__live"
BUILD_SEPARATOR = "__"
PAGE = 1000  # records read or written per Chroma call
SERVER_POLL_SECONDS = 1.0  # how often a reader asks the server which build is live


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk found by a query, with its cosine similarity to the query (higher is closer)."""

    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as a build holds it: text, vector and metadata (copied as is between builds)."""

    chunk: Chunk
    vector: Sequence[float]
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What is in an index."""

    articles: int
    chunks: int
    fingerprint: IndexFingerprint
    built_at: str
    sources: tuple[tuple[str, int], ...]  # (outlet, articles), most first
    build_id: str = ""


class Backend(Protocol):
    """Where builds live: a local directory per build, or collections on a Chroma server."""

    layout: IndexLayout
    description: str

    def live_build(self) -> str | None: ...

    def poll(self, force: bool = False) -> str | None:
        """The live build's id if it may have changed since the last poll, else None."""
        ...

    def open_collection(self, build_id: str) -> tuple[ClientAPI, ChromaCollection]: ...

    def create_collection(
        self, build_id: str, metadata: dict[str, Any]
    ) -> tuple[ClientAPI, ChromaCollection]: ...

    def publish(self, build_id: str) -> None: ...

    def remove_builds(self, keep: set[str]) -> list[str]: ...

    def remove_build(self, build_id: str) -> None: ...

    def release(self, client: ClientAPI) -> None: ...


def hnsw_configuration() -> CreateHNSWConfiguration:
    """The vector index's graph, set here rather than left to Chroma's defaults. Measured on 100k
    news and Wikipedia chunks with 300 dev questions (bench/search.py), recall@10 against exact
    search by ef_search: 10 -> 0.866, 40 -> 0.975, 60 -> 0.984, 100 -> 0.991, 200 -> 0.994; a
    query costs 1.6 ms at 10, 2.0 ms at 100 and 2.5 ms at 200, small beside the 14 ms it takes
    to embed the question on an idle machine."""
    return {"space": "cosine", "max_neighbors": 16, "ef_construction": 100, "ef_search": 100}


def chroma_settings() -> Any:
    """Chroma client settings: telemetry off, no reset."""
    enforce_offline()
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


class LocalBackend:
    """Each build in its own Chroma directory; the pointer file names the live one."""

    def __init__(self, layout: IndexLayout) -> None:
        self.layout = layout
        self.description = str(layout.index_dir)
        self._signature: tuple[int, int, int] | None = None

    def live_build(self) -> str | None:
        self._signature = pointer_signature(self.layout)
        return read_pointer(self.layout)

    def poll(self, force: bool = False) -> str | None:
        signature = pointer_signature(self.layout)
        if signature == self._signature and not force:
            return None
        return self.live_build()

    def open_collection(self, build_id: str) -> tuple[ClientAPI, ChromaCollection]:
        directory = self.layout.chroma_dir(build_id)
        if not self.layout.build_dir(build_id).is_dir():
            raise damaged(f"The index pointer names build {build_id}, which is missing")
        check_sqlite_file(directory / "chroma.sqlite3")
        try:
            client = self._client(directory)
        except Exception as e:  # chromadb's InternalError for a malformed database, and others
            if cannot_write(directory, e):
                raise IndexWriteError(
                    f"The index build {build_id} cannot be opened: Chroma writes to {directory} "
                    f"even to read it, and cannot ({e}). Free some disk space or make the index "
                    "folder writable."
                ) from e
            raise damaged(f"The index build {build_id} cannot be opened ({e})") from e
        try:
            return client, client.get_collection(self.layout.collection, embedding_function=None)
        except Exception as e:  # NotFoundError or a damaged database
            self.release(client)
            raise damaged(f"The index build {build_id} cannot be opened ({e})") from e

    def create_collection(
        self, build_id: str, metadata: dict[str, Any]
    ) -> tuple[ClientAPI, ChromaCollection]:
        directory = self.layout.chroma_dir(build_id)
        directory.mkdir(parents=True)
        client = self._client(directory)
        return client, client.create_collection(
            self.layout.collection,
            embedding_function=None,
            configuration={"hnsw": hnsw_configuration()},
            metadata=metadata,
        )

    def publish(self, build_id: str) -> None:
        write_pointer(self.layout, build_id)

    def remove_builds(self, keep: set[str]) -> list[str]:
        return remove_stale_files(self.layout, keep)

    def remove_build(self, build_id: str) -> None:
        shutil.rmtree(self.layout.build_dir(build_id), ignore_errors=True)

    def release(self, client: ClientAPI) -> None:
        cast(Any, client).close()  # stops the build's Chroma system, freeing its memory

    @staticmethod
    def _client(directory: Path) -> ClientAPI:
        import chromadb

        return chromadb.PersistentClient(path=str(directory), settings=chroma_settings())


class ServerBackend:
    """Builds as collections on a Chroma server; a catalog collection names the live one.

    The keyword index and manifests stay on the local disk under the layout's build folders;
    another machine rebuilds them from the server's chunks the first time it opens a build.
    """

    def __init__(self, layout: IndexLayout, url: str) -> None:
        self.layout = layout
        self.url = url
        self.description = f"{url} (collection {layout.collection!r})"
        self._client = connect(url)
        self._catalog_name = f"{layout.collection}{CATALOG_SUFFIX}"
        self._polled_at = 0.0

    def live_build(self) -> str | None:
        self._polled_at = time.monotonic()
        try:
            catalog = self._client.get_collection(self._catalog_name, embedding_function=None)
        except Exception as e:
            if _is_not_found(e):
                return None
            raise self._server_error("reading the index catalog", e) from e
        build_id = str((catalog.metadata or {}).get(f"{_PREFIX}live", ""))
        if not is_build_id(build_id):
            raise damaged(f"The catalog {self._catalog_name!r} on {self.url} names no build")
        return build_id

    def poll(self, force: bool = False) -> str | None:
        if not force and time.monotonic() - self._polled_at < SERVER_POLL_SECONDS:
            return None
        return self.live_build()

    def open_collection(self, build_id: str) -> tuple[ClientAPI, ChromaCollection]:
        name = self.collection_name(build_id)
        try:
            return self._client, self._client.get_collection(name, embedding_function=None)
        except Exception as e:
            if _is_not_found(e):
                raise damaged(
                    f"The catalog on {self.url} names collection {name!r}, which is missing"
                ) from e
            raise self._server_error(f"opening collection {name!r}", e) from e

    def create_collection(
        self, build_id: str, metadata: dict[str, Any]
    ) -> tuple[ClientAPI, ChromaCollection]:
        self.layout.build_dir(build_id).mkdir(parents=True)
        collection = self._client.create_collection(
            self.collection_name(build_id),
            embedding_function=None,
            configuration={"hnsw": hnsw_configuration()},
            metadata=metadata,
        )
        return self._client, collection

    def publish(self, build_id: str) -> None:
        catalog = self._client.get_or_create_collection(self._catalog_name, embedding_function=None)
        catalog.modify(metadata={f"{_PREFIX}live": build_id})  # one request: atomic

    def remove_builds(self, keep: set[str]) -> list[str]:
        removed = remove_stale_files(self.layout, keep)
        prefix = f"{self.layout.collection}{BUILD_SEPARATOR}"
        for found in self._client.list_collections():
            build_id = found.name.removeprefix(prefix)
            if found.name.startswith(prefix) and is_build_id(build_id) and build_id not in keep:
                self._client.delete_collection(found.name)
                removed.append(build_id)
        return sorted(set(removed))

    def remove_build(self, build_id: str) -> None:
        shutil.rmtree(self.layout.build_dir(build_id), ignore_errors=True)
        name = self.collection_name(build_id)
        if name in {c.name for c in self._client.list_collections()}:
            self._client.delete_collection(name)

    def release(self, client: ClientAPI) -> None:
        pass  # one HTTP client serves every build

    def collection_name(self, build_id: str) -> str:
        return f"{self.layout.collection}{BUILD_SEPARATOR}{build_id}"

    def _server_error(self, doing: str, error: Exception) -> IndexServerError:
        return IndexServerError(
            f"The Chroma server at {self.url} failed while {doing}: {error}. "
            "Check that it is running, or unset CITEQA_CHROMA_URL to use a local index."
        )


def connect(url: str) -> ClientAPI:
    """An HTTP client for the Chroma server at `url`, telemetry off; `IndexServerError` if down."""
    import chromadb

    parts = urlsplit(url)
    ssl = parts.scheme == "https"
    try:
        return chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=chroma_settings(),
        )
    except Exception as e:  # ValueError "Could not connect", httpx errors
        raise IndexServerError(
            f"Cannot reach the Chroma server at {url} ({e}). Start it (chroma run --path DIR "
            "--port PORT) or unset CITEQA_CHROMA_URL to use a local index."
        ) from e


def cannot_write(directory: Path, error: Exception) -> bool:
    """Whether Chroma failed to open a build because its folder is read-only or its disk full
    (SQLite's READONLY and FULL errors), not because the build is damaged."""
    text = str(error)
    readonly = not os.access(directory / "chroma.sqlite3", os.W_OK)
    return readonly or "readonly database" in text or "database or disk is full" in text


def open_backend(layout: IndexLayout, chroma_url: str | None) -> Backend:
    return ServerBackend(layout, chroma_url) if chroma_url else LocalBackend(layout)


def _is_not_found(error: Exception) -> bool:
    return type(error).__name__ == "NotFoundError" or "does not exist" in str(error)


def check_build_files(backend: Backend, manifest: Manifest) -> None:
    """Read-only checks of a build's files, without opening Chroma (which writes as it opens):
    the database's header, size and pages, and the keyword index. `IndexDamagedError` if bad."""
    layout = backend.layout
    if isinstance(backend, LocalBackend):
        check_sqlite_file(layout.chroma_dir(manifest.build_id) / "chroma.sqlite3", thorough=True)
    keyword = layout.keyword_dir(manifest.build_id)
    if isinstance(backend, LocalBackend) or keyword.exists():
        load_keyword_index(keyword, manifest.chunks)


def check_sqlite_file(path: Path, thorough: bool = False) -> None:
    """`IndexDamagedError` unless `path` starts like a SQLite database and is not truncated;
    `thorough` also has SQLite check every page (read-only)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise damaged(f"The index database {path} is missing") from e
    except OSError as e:
        raise damaged(f"The index database {path} cannot be read ({e})") from e
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise damaged(f"The index database {path} is damaged (no SQLite header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is only current when these two counters agree.
    if header[24:28] == header[92:96] and size < page_size * pages:
        raise damaged(
            f"The index database {path} is truncated ({size} bytes of {page_size * pages})"
        )
    # A journal left by a killed process is rolled back by the next Chroma that opens the
    # database; a read-only check cannot do that, so it waits for it.
    if thorough and not path.with_name(f"{path.name}-journal").exists():
        try:
            with contextlib.closing(
                sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
            ) as db:
                verdict = db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.Error as e:
            raise damaged(f"The index database {path} is damaged ({e})") from e
        if verdict != ("ok",):
            raise damaged(f"The index database {path} is damaged ({verdict[0]})")


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

    def query(
        self, vector: Sequence[float], k: int, exclude_articles: Collection[str] = ()
    ) -> list[ScoredChunk]:
        """The `k` chunks closest to `vector`, closest first, leaving out `exclude_articles`."""
        if k <= 0:
            return []
        self.refresh()
        try:
            return query_collection(self._current.collection, vector, k, exclude_articles)
        except CiteqaIndexError:
            if not self.refresh(force=True):  # the build may have been replaced under us
                raise
        return query_collection(self._current.collection, vector, k, exclude_articles)

    def get(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, list[float]]]:
        """The chunks with these ids and their vectors (ids not in the index are left out)."""
        if not chunk_ids:
            return {}
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


def check_fingerprint(actual: IndexFingerprint, expected: IndexFingerprint) -> None:
    if actual != expected:
        raise IndexMismatchError(
            f"The index was built with different settings: {actual.differences(expected)}. "
            f"Rebuild it with: {REBUILD_HINT}"
        )


def not_built(backend: Backend) -> IndexNotBuiltError:
    if isinstance(backend, LocalBackend) and backend.layout.legacy_index():
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
    if isinstance(backend, LocalBackend) or path.exists():
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
                "source": _opt(meta.get("source")),
                "chunks": [],
            },
        )
        entry["chunks"].append(chunk_id)
    manifest = Manifest(
        build_id=build_id,
        built_at=str((collection.metadata or {}).get(f"{_PREFIX}built_at", "")),
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
    if isinstance(backend, LocalBackend) or directory.exists():
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


def iterate_metadata(collection: ChromaCollection) -> Iterator[tuple[str, dict[str, Any]]]:
    for chunk_id, _, meta in iterate_records(collection, with_documents=False):
        yield chunk_id, meta


def iterate_records(
    collection: ChromaCollection, with_documents: bool
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every record's id, text (empty unless asked for) and metadata, a page at a time."""
    offset = 0
    include: list[Any] = ["metadatas", "documents"] if with_documents else ["metadatas"]
    while True:
        found = collection.get(limit=PAGE, offset=offset, include=include)
        documents = found["documents"] or [""] * len(found["ids"])
        for i, d, m in zip(found["ids"], documents, found["metadatas"] or [], strict=True):
            yield i, d or "", dict(m or {})
        if len(found["ids"]) < PAGE:
            return
        offset += PAGE


def query_collection(
    collection: ChromaCollection,
    vector: Sequence[float],
    k: int,
    exclude_articles: Collection[str] = (),
) -> list[ScoredChunk]:
    where = (
        cast("Where", {"article_id": {"$nin": sorted(exclude_articles)}})
        if exclude_articles
        else None
    )
    try:
        result = collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
    except Exception as e:  # chromadb raises many unrelated types
        raise CiteqaIndexError(f"Searching the index failed: {e}") from e
    ids = result["ids"][0]
    documents = (result["documents"] or [[]])[0]
    metadatas = (result["metadatas"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    return [
        ScoredChunk(chunk_from_record(i, d or "", dict(m or {})), 1.0 - float(dist))
        for i, d, m, dist in zip(ids, documents, metadatas, distances, strict=True)
    ]


class BuildWriter:
    """A new build's collection, written page by page; nobody reads it until it is published."""

    def __init__(self, backend: Backend, build_id: str, fingerprint: IndexFingerprint) -> None:
        self.backend = backend
        self.build_id = build_id
        self.fingerprint = fingerprint
        self.built_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        metadata: dict[str, Any] = {
            **fingerprint.to_metadata(),
            f"{_PREFIX}built_at": self.built_at,
        }
        with self._write_errors():
            self._client, self._collection = backend.create_collection(build_id, metadata)
        self._pending: list[StoredChunk] = []

    def add(self, items: Sequence[StoredChunk]) -> None:
        """Queue `items`; they are written a full page at a time (Chroma writes fewer, bigger
        batches faster), the rest by `flush`."""
        self._pending.extend(items)
        while len(self._pending) >= PAGE:
            self._write(self._pending[:PAGE])
            del self._pending[:PAGE]

    def flush(self) -> None:
        """Write what `add` has queued."""
        if self._pending:
            self._write(self._pending)
            self._pending = []

    def _write(self, page: Sequence[StoredChunk]) -> None:
        with self._write_errors():
            self._collection.add(
                ids=[s.chunk.id for s in page],
                embeddings=np.asarray([s.vector for s in page], dtype=np.float32),
                documents=[s.chunk.text for s in page],
                metadatas=[dict(s.metadata) for s in page],
            )

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        """Chroma's errors while writing (a full disk, a read-only folder) as `IndexWriteError`."""
        try:
            yield
        except CiteqaIndexError:
            raise
        except Exception as e:  # chromadb raises many unrelated types
            raise IndexWriteError(
                f"Writing the new build to {self.backend.description} failed ({e}). Check that "
                "there is free disk space and that it is writable; the live index is unchanged."
            ) from e

    def verify(self, expected_chunks: int) -> None:
        """`IndexDamagedError` unless the build holds `expected_chunks` chunks and a probe query
        finds a stored chunk again. Writes what is queued first."""
        self.flush()
        count = int(self._collection.count())
        if count != expected_chunks:
            raise damaged(f"The new build holds {count} chunks, not {expected_chunks}")
        if count == 0:
            return
        probe = self._collection.get(limit=1, include=["embeddings"])
        vectors = probe["embeddings"]
        if vectors is None or not len(vectors):
            raise damaged("The new build returns no vectors")
        hits = query_collection(self._collection, [float(x) for x in vectors[0]], 1)
        if not hits or hits[0].score < 0.99:
            raise damaged("The new build does not find its own chunks")

    def close(self) -> None:
        self.backend.release(self._client)


def record_metadata(chunk: Chunk, content_hash: str, origin: str) -> dict[str, str | int]:
    """A chunk's metadata in a build: `chunk_metadata` and the article's hash and origin."""
    return {**chunk_metadata(chunk), ARTICLE_HASH: content_hash, ARTICLE_ORIGIN: origin}


def reorigin(stored: StoredChunk, origin: str) -> StoredChunk:
    """A copied chunk whose article now comes from `origin` (a file renamed or moved)."""
    if stored.metadata.get(ARTICLE_ORIGIN) == origin:
        return stored
    return StoredChunk(stored.chunk, stored.vector, {**stored.metadata, ARTICLE_ORIGIN: origin})


def chunk_metadata(chunk: Chunk) -> dict[str, str | int]:
    """Chroma metadata for a chunk (Chroma stores no None values, so unknowns are left out)."""
    meta: dict[str, str | int] = {
        "article_id": chunk.article_id,
        "index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "title": chunk.title,
    }
    for key in ("source", "url", "published"):
        value = getattr(chunk, key)
        if value:
            meta[key] = value
    if chunk.other_sources:  # Chroma metadata holds no lists of strings here: a JSON list
        meta["other_sources"] = json.dumps(list(chunk.other_sources), ensure_ascii=False)
    return meta


def chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        article_id=str(meta["article_id"]),
        index=int(meta.get("index", 0)),
        text=text,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", len(text))),
        title=str(meta.get("title", "")),
        source=_opt(meta.get("source")),
        url=_opt(meta.get("url")),
        published=_opt(meta.get("published")),
        other_sources=tuple(json.loads(str(meta["other_sources"])))
        if meta.get("other_sources")
        else (),
    )


def _opt(value: object) -> str | None:
    return str(value) if value not in (None, "") else None

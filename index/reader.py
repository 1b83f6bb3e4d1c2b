"""Reading an index: open the live build after checking it is whole, follow each new build a
writer publishes, and query it."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.backends import Backend, open_backend
from index.collection import (
    PAGE,
    exact_query,
    fetch_hits,
    iterate_metadata,
    iterate_records,
    query_collection,
)
from index.errors import CiteqaIndexError, IndexDamagedError, IndexNotBuiltError
from index.fingerprint import check_fingerprint
from index.integrity import check_sqlite_file
from index.keyword import (
    KeywordIndex,
    build_keyword_index,
    check_keyword_count,
    load_keyword_index,
    save_keyword_index,
)
from index.layout import REBUILD_HINT, IndexLayout, damaged
from index.manifest import (
    ArticleEntry,
    IndexFingerprint,
    Manifest,
    layers_from_json,
    load_manifest,
    save_manifest,
)
from index.records import (
    ARTICLE_HASH,
    ARTICLE_ORIGIN,
    BUILT_AT,
    DAYS_INDEXED,
    LATEST_DAY,
    LAYERS,
    TEXTS_APART,
    chunk_from_record,
    text_or_none,
)
from index.stored import IndexStats, RetrievedChunk, StoredChunk
from index.texts import TextReader
from index.types import Chunk, DayRange, day_number
from index.vectors import VectorReader

if TYPE_CHECKING:
    from index.backends import ChromaCollection, ClientAPI

log = logging.getLogger(__name__)
# A date window holding at most this many chunks is searched exactly, over their rows of the
# build's vectors file (`index.vectors`), or where a build has none, by Chroma limited to the
# window's ids. A wider one is kept by searching deeper (Chroma looks each id up: a window of most
# of a million chunks took seconds; and 50,000 rows are 77 MB of vectors to read).
ID_FILTER_LIMIT = 50_000
# Without a vectors file, a window of at most this many chunks is searched exactly over the
# vectors Chroma stores (`index.collection.exact_query`): 45 µs a chunk.
EXACT_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class _Part:
    """One build's collection a reader searches: its own chunks, or a layer's minus those a
    later build hid (see `index.manifest.Layer`)."""

    build_id: str
    collection: ChromaCollection
    count: int
    hidden: frozenset[str] = frozenset()
    texts: TextReader | None = None  # where the chunk texts are, if not in the collection
    vectors: VectorReader | None = None  # the build's vectors file, if it has one

    def with_texts(self, chunks: list[Chunk]) -> list[Chunk]:
        """`chunks` (read from the collection) with their texts."""
        if self.texts is None or not chunks:
            return chunks
        texts = self.texts.texts([c.id for c in chunks])
        missing = [c.id for c in chunks if c.id not in texts]
        if missing:
            raise damaged(f"Build {self.build_id} lacks the texts of {len(missing)} chunk(s)")
        return [replace(c, text=texts[c.id]) for c in chunks]


@dataclass(slots=True)
class _OpenBuild:
    """A build a reader has open: the collections it searches (its layers', its own last), its
    record and (once asked for) keyword index."""

    build_id: str
    parts: tuple[_Part, ...]
    manifest: Manifest
    keyword: KeywordIndex | None = field(default=None)


@dataclass(frozen=True, slots=True)
class _Files:
    """What a reader holds open of one build."""

    client: ClientAPI
    collection: ChromaCollection
    texts: TextReader | None
    vectors: VectorReader | None

    def close(self, backend: Backend) -> None:
        if self.texts is not None:
            self.texts.close()
        backend.release(self.client)


class _Opened:
    """The builds' collections a reader holds open, each shared by the builds that read it (a
    sync's build reads the unchanged chunks from the builds before it), with their keyword
    indexes once loaded."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._open: dict[str, _Files] = {}
        self._users: dict[str, int] = {}
        self.keywords: dict[str, KeywordIndex] = {}

    def open(self, manifest: Manifest) -> tuple[_Part, ...]:
        """The parts of the build `manifest` records, each opened and checked once."""
        hidden = {layer.build_id: layer.hidden for layer in manifest.layers}
        counts = {layer.build_id: layer.chunks for layer in manifest.layers}
        counts[manifest.build_id] = manifest.own_chunks
        parts: list[_Part] = []
        try:
            for build_id in manifest.builds_read():
                files = self._acquire(build_id, manifest, counts[build_id])
                hides = hidden.get(build_id, frozenset())
                parts.append(
                    _Part(
                        build_id,
                        files.collection,
                        counts[build_id],
                        hides,
                        files.texts,
                        files.vectors,
                    )
                )
        except BaseException:
            self.release(tuple(parts))
            raise
        return tuple(parts)

    def _acquire(self, build_id: str, manifest: Manifest, count: int) -> _Files:
        if build_id not in self._open:
            client, collection = self._backend.open_collection(build_id)
            texts = None
            try:
                check_collection(build_id, collection, manifest, count)
                if (collection.metadata or {}).get(TEXTS_APART):
                    texts = TextReader(self._backend.layout.texts_path(build_id), count)
                vectors_file = self._backend.layout.vectors_path(build_id)
                vectors = VectorReader(vectors_file, count) if vectors_file.exists() else None
            except BaseException:
                if texts is not None:
                    texts.close()
                self._backend.release(client)
                raise
            self._open[build_id] = _Files(client, collection, texts, vectors)
        self._users[build_id] = self._users.get(build_id, 0) + 1
        return self._open[build_id]

    def release(self, parts: Sequence[_Part]) -> None:
        for part in parts:
            self._users[part.build_id] -= 1
            if not self._users[part.build_id]:
                del self._users[part.build_id]
                files = self._open.pop(part.build_id)
                self.keywords.pop(part.build_id, None)
                files.close(self._backend)

    def keyword(self, part: _Part, manifest: Manifest) -> KeywordIndex:
        """The part's own keyword index, loaded once."""
        if part.build_id not in self.keywords:
            collection = self._open[part.build_id].collection
            self.keywords[part.build_id] = open_keyword_layer(
                self._backend, part.build_id, part.count, collection, manifest
            )
        return self.keywords[part.build_id]

    def has_keyword_files(self, build_id: str) -> bool:
        return build_id in self.keywords or self._backend.layout.keyword_dir(build_id).exists()

    def close(self) -> None:
        for files in self._open.values():
            files.close(self._backend)
        self._open.clear()
        self._users.clear()
        self.keywords.clear()


class Store:
    """The live build of an index, for reading. Before each query it checks whether a writer
    published a new build (a `stat` of the pointer file, or at most one server request a second)
    and moves to it, so a long-running reader picks up `sync` and `rebuild` without a restart."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._expected: IndexFingerprint | None = None
        self._opened = _Opened(backend)
        self._current = open_live(backend, self._opened)
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
                new = open_build(self._backend, build_id, self._opened)
            except IndexDamagedError:  # replaced again before we opened it
                new = open_live(self._backend, self._opened)
            try:
                if self._expected is not None:
                    check_fingerprint(new.manifest.fingerprint, self._expected)
                if self._keyword is not None:
                    new.keyword = self._stacked_keyword(new)
            except BaseException:
                self._opened.release(new.parts)
                raise
            log.info("index: now reading build %s", new.build_id)
            if self._keyword is not None and new.keyword is not None:
                self._keyword.follow(new.keyword)
            self._retired.append(self._current)
            self._current = new
            # A query may still run on the build just replaced: release only older ones.
            while len(self._retired) > 1:
                self._opened.release(self._retired.pop(0).parts)
            return True

    def close(self) -> None:
        with self._lock:
            self._opened.close()
            self._retired = []

    def count(self) -> int:
        return self._current.manifest.chunks

    @property
    def days_indexed(self) -> bool:
        """Whether searches can keep a range of publication days inside the index (builds
        written before days were indexed cannot: their readers filter after the search)."""
        return all(
            bool((part.collection.metadata or {}).get(DAYS_INDEXED, False))
            for part in self._current.parts
        )

    @property
    def latest_day(self) -> int | None:
        """The newest publication day in the build (YYYYMMDD, 0: none dated); None if unknown."""
        days = [(part.collection.metadata or {}).get(LATEST_DAY) for part in self._current.parts]
        return None if None in days else max(int(d) for d in days if d is not None)

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
            try:
                return self._query(build, vector, k, exclude_articles, days)
            except CiteqaIndexError:
                # The build may have been replaced under us.
                if attempt == 2 or not self.refresh(force=True):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _query(
        self,
        build: _OpenBuild,
        vector: Sequence[float],
        k: int,
        exclude_articles: Collection[str],
        days: DayRange | None,
    ) -> list[RetrievedChunk]:
        """Each part's best `k` visible chunks within `days`, merged by similarity."""
        found: list[RetrievedChunk] = []
        for part in build.parts:
            hits = self._part_query(build, part, vector, k, exclude_articles, days)
            texts = part.with_texts([h.chunk for h in hits])
            found.extend(replace(h, chunk=c) for h, c in zip(hits, texts, strict=True))
        if len(build.parts) == 1:
            return found
        found.sort(key=lambda h: -h.similarity)
        return [replace(h, rank=rank) for rank, h in enumerate(found[:k], start=1)]

    def _part_query(
        self,
        build: _OpenBuild,
        part: _Part,
        vector: Sequence[float],
        k: int,
        exclude_articles: Collection[str],
        days: DayRange | None,
    ) -> list[RetrievedChunk]:
        """A part's best `k` visible chunks within `days`. A narrow window is searched inside
        the index, limited to the chunks in it; a wide one, and hidden chunks, by searching
        deeper until `k` are left after dropping the rest (the best `depth` hold the best `k`
        kept)."""
        bounded = days is not None and days.bounded
        found = self._rows_within(build, part, days) if days is not None and bounded else None
        if found is not None and part.vectors is not None and len(found[1]) <= ID_FILTER_LIMIT:
            keyword, rows = found
            if exclude_articles:
                rows = rows[~np.isin(keyword.articles_of(rows), list(exclude_articles))]
            best, scores = part.vectors.nearest(rows, vector, k)
            return fetch_hits(part.collection, keyword.ids_of(best), scores.tolist())
        within = None if found is None else found[0].ids_of(found[1])
        if within is not None and len(within) <= EXACT_LIMIT:
            return exact_query(part.collection, vector, k, within, exclude_articles)
        if within is not None and len(within) <= ID_FILTER_LIMIT:
            return query_collection(
                part.collection, vector, min(k, len(within)), exclude_articles, days, within
            )
        kept_share = (len(within) if within is not None else part.count) / max(part.count, 1)
        # Without local day numbers (a server's build) Chroma's `where` keeps the days.
        where_days = days if within is None else None
        depth = min(part.count, math.ceil(k / max(kept_share, 1e-9)) + len(part.hidden))
        while depth > 0:
            hits = query_collection(part.collection, vector, depth, exclude_articles, where_days)
            kept = [
                h
                for h in hits
                if h.chunk.id not in part.hidden
                and (where_days is not None or days is None or days.allows(day_of(h.chunk)))
            ]
            if len(kept) >= k or len(hits) < depth or depth >= part.count:
                return kept[:k]
            depth = min(part.count, depth * 4)
        return []

    def _rows_within(
        self, build: _OpenBuild, part: _Part, days: DayRange
    ) -> tuple[KeywordIndex, Any] | None:
        """The part's own keyword index (loaded once per build) and the rows of its visible
        chunks published within `days`; None when they are not at hand (a server's build without
        local files), and Chroma's `where` filters instead."""
        with self._lock:
            if not self._opened.has_keyword_files(part.build_id):
                return None
            keyword = self._opened.keyword(part, build.manifest)
        rows = keyword.rows_within(days, part.hidden)
        return None if rows is None else (keyword, rows)

    def get(
        self, chunk_ids: Sequence[str], *, follow: bool = True
    ) -> dict[str, tuple[Chunk, list[float]]]:
        """The chunks with these ids and their vectors (ids not in the index are left out); from
        a newly published build, unless `follow` is off."""
        if not chunk_ids:
            return {}
        if follow:
            self.refresh()
        return {
            s.chunk.id: (s.chunk, [float(x) for x in s.vector])
            for s in self._stored(self._current, chunk_ids)
        }

    def export(self, chunk_ids: Sequence[str]) -> Iterator[list[StoredChunk]]:
        """The chunks with these ids as stored (text, vector, metadata), a page at a time."""
        build = self._current
        for begin in range(0, len(chunk_ids), PAGE):
            page = list(chunk_ids[begin : begin + PAGE])
            found = self._stored(build, page)
            if len(found) != len(page):
                raise damaged(
                    f"Build {build.build_id} lacks {len(page) - len(found)} chunk(s) that its "
                    "record lists"
                )
            yield found

    @staticmethod
    def _stored(build: _OpenBuild, chunk_ids: Sequence[str]) -> list[StoredChunk]:
        """The visible chunks with these ids, from whichever part holds them."""
        stored: list[StoredChunk] = []
        for part in build.parts:
            wanted = [i for i in chunk_ids if i not in part.hidden]
            if not wanted or not part.count:
                continue
            found = part.collection.get(
                ids=wanted, include=["documents", "metadatas", "embeddings"]
            )
            documents = found["documents"] or []
            metadatas = found["metadatas"] or []
            vectors = found["embeddings"] if found["embeddings"] is not None else []
            rows = list(zip(found["ids"], documents, metadatas, vectors, strict=True))
            read = [chunk_from_record(i, d or "", dict(m or {})) for i, d, m, _ in rows]
            chunks = part.with_texts(read)
            stored.extend(
                StoredChunk(chunk, list(v), dict(m or {}))
                for chunk, (_, _, m, v) in zip(chunks, rows, strict=True)
            )
        return stored

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index of the build being read; the same object, moved to each new build."""
        self.refresh()
        with self._lock:
            build = self._current
            if build.keyword is None:
                build.keyword = self._stacked_keyword(build)
            if self._keyword is None:
                self._keyword = build.keyword
            return self._keyword

    def _stacked_keyword(self, build: _OpenBuild) -> KeywordIndex:
        """The build's keyword index: its parts' own (each loaded once), stacked into an object
        of its own even for one part, since the one handed out follows each new build and a
        part's own must stay that part's."""
        return KeywordIndex.stacked(
            [(self._opened.keyword(part, build.manifest), part.hidden) for part in build.parts]
        )

    def stats(self) -> IndexStats:
        manifest = self._current.manifest
        return IndexStats(
            articles=len(manifest.articles),
            chunks=manifest.chunks,
            fingerprint=manifest.fingerprint,
            built_at=manifest.built_at,
            sources=manifest.sources(),
            build_id=manifest.build_id,
            layers=len(manifest.layers),
        )


def day_of(chunk: Chunk) -> int:
    """A chunk's publication day as stored (YYYYMMDD; 0: unknown)."""
    return day_number(chunk.published) or 0


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


def open_live(backend: Backend, opened: _Opened | None = None, attempts: int = 3) -> _OpenBuild:
    """Open the live build; if a writer replaces it meanwhile, open the new one."""
    for attempt in range(1, attempts + 1):
        build_id = backend.live_build()
        if build_id is None:
            raise not_built(backend)
        try:
            return open_build(backend, build_id, opened or _Opened(backend))
        except IndexDamagedError:
            if attempt == attempts or backend.live_build() == build_id:
                raise
    raise AssertionError("unreachable")


def open_build(backend: Backend, build_id: str, opened: _Opened) -> _OpenBuild:
    """Open a build, and the layers it reads, checking that each database, record and vectors
    agree."""
    if backend.derived_files_required:
        if not backend.layout.build_dir(build_id).is_dir():
            raise damaged(f"The index pointer names build {build_id}, which is missing")
        manifest = load_manifest(backend.layout.manifest_path(build_id))
    else:
        _, collection = backend.open_collection(build_id)  # a server's: one client for all
        manifest = open_manifest(backend, build_id, collection)
    if manifest.build_id != build_id:
        raise damaged(f"Build {build_id}'s record names build {manifest.build_id}")
    return _OpenBuild(build_id, opened.open(manifest), manifest)


def check_collection(
    build_id: str, collection: ChromaCollection, manifest: Manifest, expected: int
) -> None:
    """`IndexDamagedError` unless the build's database was made as `manifest` says, holds
    `expected` chunks and answers a probe query."""
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
    if count != expected:
        raise damaged(f"Build {build_id} holds {count} chunks but its record lists {expected}")


def open_manifest(
    backend: Backend,
    build_id: str,
    collection: ChromaCollection,
    later: frozenset[str] = frozenset(),
) -> Manifest:
    """The build's record; on a server, rebuilt from the chunks' metadata if not on this disk
    (`later`: the builds that read this one, whose records are being rebuilt)."""
    path = backend.layout.manifest_path(build_id)
    if backend.derived_files_required or path.exists():
        return load_manifest(path)
    manifest = rebuild_manifest(backend, build_id, collection, later)
    save_cache(lambda: save_manifest(manifest, path))
    return manifest


def rebuild_manifest(
    backend: Backend, build_id: str, collection: ChromaCollection, later: frozenset[str]
) -> Manifest:
    """A server build's record from its own chunks' metadata and, for a sync's build, the
    articles its layers hold that it does not hide (their records rebuilt the same way)."""
    metadata = dict(collection.metadata or {})
    fingerprint = IndexFingerprint.from_metadata(metadata)
    if fingerprint is None:
        raise damaged(f"Collection {collection.name!r} has no build record")
    try:
        layers = layers_from_json(str(metadata[LAYERS])) if LAYERS in metadata else ()
    except (ValueError, KeyError, TypeError) as e:
        raise damaged(f"Collection {collection.name!r} has a damaged list of layers") from e
    reading = later | {build_id}
    if len({layer.build_id for layer in layers} - reading) != len(layers):
        raise damaged(f"Collection {collection.name!r} has a damaged list of layers (a cycle)")
    articles: dict[str, ArticleEntry] = {}
    for layer in layers:
        client, layer_collection = backend.open_collection(layer.build_id)
        try:
            earlier = open_manifest(backend, layer.build_id, layer_collection, reading)
        finally:
            backend.release(client)
        for article_id, entry in earlier.articles.items():
            held = earlier.holder(entry) == layer.build_id
            if held and layer.hidden.isdisjoint(entry.chunk_ids):
                articles[article_id] = replace(entry, layer=layer.build_id)
    articles.update(own_articles(collection))
    return Manifest(
        build_id=build_id,
        built_at=str(metadata.get(BUILT_AT, "")),
        fingerprint=fingerprint,
        articles=articles,
        layers=layers,
        days_indexed=bool(metadata.get(DAYS_INDEXED, False)),
        texts_apart=bool(metadata.get(TEXTS_APART, False)),
    )


def own_articles(collection: ChromaCollection) -> dict[str, ArticleEntry]:
    """The articles whose chunks `collection` holds, by id, from the chunks' metadata."""
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
    return {
        article_id: ArticleEntry(e["hash"], e["origin"], e["source"], tuple(e["chunks"]))
        for article_id, e in articles.items()
    }


def open_keyword_layer(
    backend: Backend, build_id: str, chunks: int, collection: ChromaCollection, manifest: Manifest
) -> KeywordIndex:
    """A build's own keyword index; on a server, rebuilt from its chunks if not on this disk."""
    directory = backend.layout.keyword_dir(build_id)
    if backend.derived_files_required or directory.exists():
        return load_keyword_index(directory, chunks)
    records = [
        chunk_from_record(i, d, m) for i, d, m in iterate_records(collection, with_documents=True)
    ]
    keyword = build_keyword_index(records, manifest.fingerprint.embed_titles)
    save_cache(lambda: save_keyword_index(keyword, directory))
    return keyword


def save_cache(save: Callable[[], None]) -> None:
    """Keep a copy of derived data on this disk; losing the race to a writer's cleanup is fine."""
    try:
        save()
    except OSError as e:
        log.warning("could not keep a local copy of derived index data: %s", e)


def check_build_files(backend: Backend, manifest: Manifest, thorough: bool = True) -> None:
    """Read-only checks of a build's files and its layers', without opening Chroma (which
    writes as it opens): each database's header and size, the vectors file's shape and the
    keyword index's count, and with `thorough` every database page and the whole keyword index.
    `IndexDamagedError` if bad."""
    counts = {layer.build_id: layer.chunks for layer in manifest.layers}
    counts[manifest.build_id] = manifest.own_chunks
    for build_id in manifest.builds_read():
        backend.check_database(build_id, thorough)
        # Every build a layered one reads was written as it was (layers need this version).
        texts = backend.layout.texts_path(build_id)
        if manifest.texts_apart or texts.exists():
            check_sqlite_file(texts, thorough)
        vectors = backend.layout.vectors_path(build_id)
        if vectors.exists():
            VectorReader(vectors, counts[build_id])
        keyword = backend.layout.keyword_dir(build_id)
        if backend.derived_files_required or keyword.exists():
            if thorough:
                load_keyword_index(keyword, counts[build_id])
            else:
                check_keyword_count(keyword, counts[build_id])

"""Where builds live, and the Chroma clients that reach them (the only module importing chromadb).

Chroma runs in one of two modes: a local directory per build (`index.layout`), published by
replacing a pointer file; or a Chroma server (`CITEQA_CHROMA_URL`), where each build is a collection
`<collection>__<build id>` and a small catalog collection `<collection>__live` names the live one.
Vectors always come from the project's own embedding model; Chroma's default embedding function
(which downloads a model) is never used. Telemetry is off in both modes.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast
from urllib.parse import urlsplit

from index.errors import IndexServerError, IndexWriteError
from index.integrity import cannot_write, check_sqlite_file
from index.layout import (
    IndexLayout,
    damaged,
    is_build_id,
    pointer_signature,
    read_pointer,
    remove_stale_files,
    write_pointer,
)
from index.offline import enforce_offline

if TYPE_CHECKING:
    # The Chroma types the reader and the writer name too: they import them from here.
    from chromadb import Where as Where
    from chromadb.api import ClientAPI as ClientAPI
    from chromadb.api.collection_configuration import CreateHNSWConfiguration
    from chromadb.api.models.Collection import Collection

    ChromaCollection: TypeAlias = Collection

_LIVE = "citeqa:live"  # the catalog's metadata key naming the live build
CATALOG_SUFFIX = "__live"
BUILD_SEPARATOR = "__"
SERVER_POLL_SECONDS = 1.0  # how often a reader asks the server which build is live


class Backend(Protocol):
    """Where builds live: a local directory per build, or collections on a Chroma server."""

    layout: IndexLayout
    description: str

    @property
    def derived_files_required(self) -> bool:
        """Whether a build's record and keyword index must be on this disk (missing means
        damaged), rather than a copy that can be rebuilt from the build's chunks."""
        ...

    def legacy_index(self) -> bool:
        """Whether the index folder holds an index made by an older citeqa."""
        ...

    def check_database(self, build_id: str, thorough: bool = True) -> None:
        """Read-only checks of the build's database on this disk, if it has one there (its
        header and size; `thorough`: every page too)."""
        ...

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


# Larger builds search deeper: at a million chunks ef_search 100 found 0.854 of the 10 exact
# neighbours; 200 -> 0.918, 400 -> 0.954, 800 -> 0.976, 1,600 -> 0.983, 3,200 -> 0.990. Another
# million-chunk build: 1,600 -> 0.978, 2,000 -> 0.981, 2,400 -> 0.984, 3,200 -> 0.985, hybrid
# search p95 37.5-42.3 ms at 1,600, 45.0-47.1 at 2,000, 48.2-50.2 at 2,400 (bench/scale.py's
# questions, two passes each on a quiet 2-core AVX2 machine).
# (fewest chunks, ef_search) from the widest down; smaller builds keep hnsw_configuration's.
LARGE_BUILD_EF_SEARCH = ((600_000, 2000), (200_000, 1600))


def ef_search_for(chunks: int) -> int:
    """How wide a build of `chunks` searches its graph, for recall@10 of 0.98 or more."""
    for fewest, ef_search in LARGE_BUILD_EF_SEARCH:
        if chunks > fewest:
            return ef_search
    return int(hnsw_configuration().get("ef_search", 100))


def chroma_settings() -> Any:
    """Chroma client settings: telemetry off, no reset."""
    enforce_offline()
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def open_backend(layout: IndexLayout, chroma_url: str | None) -> Backend:
    return ServerBackend(layout, chroma_url) if chroma_url else LocalBackend(layout)


class LocalBackend:
    """Each build in its own Chroma directory; the pointer file names the live one."""

    derived_files_required = True

    def __init__(self, layout: IndexLayout) -> None:
        self.layout = layout
        self.description = str(layout.index_dir)
        self._signature: tuple[int, int, int] | None = None

    def legacy_index(self) -> bool:
        return self.layout.legacy_index()

    def check_database(self, build_id: str, thorough: bool = True) -> None:
        check_sqlite_file(self.layout.chroma_dir(build_id) / "chroma.sqlite3", thorough=thorough)

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
    another machine rebuilds them from the server's chunks the first time it opens a build (and
    a sync's build's layers from its collection's metadata).
    """

    derived_files_required = False

    def __init__(self, layout: IndexLayout, url: str) -> None:
        self.layout = layout
        self.url = url
        self.description = f"{url} (collection {layout.collection!r})"
        self._client = connect(url)
        self._catalog_name = f"{layout.collection}{CATALOG_SUFFIX}"
        self._polled_at = 0.0

    def legacy_index(self) -> bool:
        return False  # an older citeqa only kept its index on the local disk

    def check_database(self, build_id: str, thorough: bool = True) -> None:
        pass  # the database is the server's; opening the collection checks it

    def live_build(self) -> str | None:
        self._polled_at = time.monotonic()
        try:
            catalog = self._client.get_collection(self._catalog_name, embedding_function=None)
        except Exception as e:
            if _is_not_found(e):
                return None
            raise self._server_error("reading the index catalog", e) from e
        build_id = str((catalog.metadata or {}).get(_LIVE, ""))
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
        catalog.modify(metadata={_LIVE: build_id})  # one request: atomic

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


def _is_not_found(error: Exception) -> bool:
    return type(error).__name__ == "NotFoundError" or "does not exist" in str(error)

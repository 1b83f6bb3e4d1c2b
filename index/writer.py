"""Writing a new build's Chroma collection, page by page, and checking it before it is published."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index.backends import ef_search_for
from index.collection import PAGE, query_collection
from index.errors import CiteqaIndexError, IndexWriteError
from index.layout import damaged
from index.manifest import IndexFingerprint, Layer, layers_to_json
from index.records import BUILT_AT, DAYS_INDEXED, LATEST_DAY, LAYERS, PUBLISHED_DAY, TEXTS_APART
from index.stored import StoredChunk
from index.texts import TextReader, TextWriter
from index.vectors import VectorReader, VectorWriter

if TYPE_CHECKING:
    from index.backends import Backend


class BuildWriter:
    """A new build's collection, written page by page; nobody reads it until it is published."""

    def __init__(
        self,
        backend: Backend,
        build_id: str,
        fingerprint: IndexFingerprint,
        layers: tuple[Layer, ...] = (),
    ) -> None:
        self.backend = backend
        self.build_id = build_id
        self.fingerprint = fingerprint
        self.built_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        # A local build keeps its texts in its own file; a server's, as Chroma documents (a
        # reader on another machine has only the server).
        self.texts_apart = texts_apart = backend.derived_files_required
        metadata: dict[str, Any] = {
            **fingerprint.to_metadata(),
            BUILT_AT: self.built_at,
            DAYS_INDEXED: True,
            TEXTS_APART: texts_apart,
        }
        if layers and not backend.derived_files_required:
            # A server build's record is not on another machine's disk: it is rebuilt from the
            # chunks, and what the build reads from its layers from this.
            metadata[LAYERS] = layers_to_json(layers)
        with self._write_errors():
            self._client, self._collection = backend.create_collection(build_id, metadata)
            self._texts = TextWriter(backend.layout.texts_path(build_id)) if texts_apart else None
            self._vectors = (
                VectorWriter(backend.layout.vectors_path(build_id)) if texts_apart else None
            )
        self._pending: list[StoredChunk] = []
        self._metadata = metadata
        self.latest_day = 0  # the newest publication day written (YYYYMMDD; 0: none dated)

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
        days = [int(s.metadata.get(PUBLISHED_DAY, 0) or 0) for s in page]
        self.latest_day = max([self.latest_day, *days])
        ids = [s.chunk.id for s in page]
        vectors = np.asarray([s.vector for s in page], dtype=np.float32)
        with self._write_errors():
            self._collection.add(
                ids=ids,
                embeddings=vectors,
                documents=None if self._texts else [s.chunk.text for s in page],
                metadatas=[dict(s.metadata) for s in page],
            )
            if self._texts is not None:
                self._texts.add((s.chunk.id, s.chunk.text) for s in page)
            if self._vectors is not None:
                self._vectors.add(ids, vectors)

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

    def verify(self, chunk_ids: Sequence[str]) -> None:
        """`IndexDamagedError` unless the build holds the chunks `chunk_ids` (its keyword index's
        rows, in order) and a probe query finds a stored chunk again. Writes what is queued first,
        the vectors file in that order, and the newest publication day into the build's metadata
        (a search capped at a later date needs no filter)."""
        expected_chunks = len(chunk_ids)
        self.flush()
        with self._write_errors():
            self._collection.modify(metadata={**self._metadata, LATEST_DAY: self.latest_day})
            if ef_search_for(expected_chunks) != ef_search_for(0):
                self._collection.modify(
                    configuration={"hnsw": {"ef_search": ef_search_for(expected_chunks)}}
                )
            if self._texts is not None:
                self._texts.commit()
                TextReader(self._texts.path, expected_chunks, recount=True).close()
            if self._vectors is not None:
                self._vectors.finish(chunk_ids)
                VectorReader(self._vectors.path, expected_chunks)
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
        if self._texts is not None:
            self._texts.close()
        if self._vectors is not None:
            self._vectors.close()
        self.backend.release(self._client)

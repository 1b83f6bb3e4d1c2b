"""A local build's vectors in a file of their own (`<build>/vectors.npy`, float32), row for row
with its keyword index, so that a window of publication days is searched exactly by one gather and
one matrix product over its rows, memory-mapped: Chroma hands out stored vectors at about 45 µs
each, so a day of 5,040 chunks of a million took 634 ms through it.

The file repeats what the build's Chroma collection holds: a build without one (written before it,
or on a Chroma server) is searched through Chroma instead. A published build's file never changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.layout import damaged

_BLOCK = 65_536  # rows reordered per step when the file is finished


class VectorWriter:
    """A new build's vectors, appended as they are written (in any order) to a scratch file and
    put in the keyword index's row order by `finish`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._scratch = path.with_name(path.name + ".part")
        self._file = self._scratch.open("wb")
        self._rows: dict[str, int] = {}
        self._dimensions = 0

    def add(self, chunk_ids: Sequence[str], vectors: Any) -> None:
        block = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(chunk_ids) != len(block):
            raise ValueError("one vector per chunk id")
        if not len(block):
            return
        if self._dimensions and block.shape[1] != self._dimensions:
            raise ValueError(f"vectors of {block.shape[1]} numbers after {self._dimensions}")
        self._dimensions = block.shape[1]
        for chunk_id in chunk_ids:
            self._rows[chunk_id] = len(self._rows)
        self._file.write(block.tobytes())

    def finish(self, order: Sequence[str]) -> None:
        """Write the file with the vectors of `order`'s chunk ids in that order, durably."""
        self._file.close()
        missing = [i for i in order if i not in self._rows]
        if missing:
            raise damaged(f"The new build has no vectors for {len(missing)} chunk(s)")
        positions = np.fromiter((self._rows[i] for i in order), dtype=np.int64, count=len(order))
        shape = (len(order), self._dimensions)
        out = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=shape)
        if len(order):
            written = np.memmap(
                self._scratch, dtype=np.float32, mode="r", shape=(len(self._rows), shape[1])
            )
            for begin in range(0, len(order), _BLOCK):
                out[begin : begin + _BLOCK] = written[positions[begin : begin + _BLOCK]]
            del written
        out.flush()
        del out
        with self.path.open("rb+") as f:
            os.fsync(f.fileno())
        self._scratch.unlink()

    def close(self) -> None:
        self._file.close()
        self._scratch.unlink(missing_ok=True)


class VectorReader:
    """A published build's vectors, memory-mapped (only the rows a search reads are loaded)."""

    def __init__(self, path: Path, expected: int) -> None:
        try:
            vectors = np.load(path, mmap_mode="r" if expected else None)
        except (OSError, ValueError) as e:
            raise damaged(f"The vectors file {path} is damaged ({e})") from e
        if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != expected:
            raise damaged(
                f"The vectors file {path} holds {vectors.shape} {vectors.dtype}, not {expected} "
                "rows of float32"
            )
        self.path = path
        self._vectors = vectors

    def nearest(self, rows: Any, vector: Sequence[float], k: int) -> tuple[Any, Any]:
        """The `k` of `rows` closest to `vector` by cosine similarity, closest first, and their
        similarities."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))  # ascending rows read the file in order
        best, similarity = closest(self._vectors[rows], vector, k)
        return rows[best], similarity


def closest(vectors: Any, vector: Sequence[float], k: int) -> tuple[Any, Any]:
    """The positions of the `k` of `vectors` closest to `vector` by cosine similarity, closest
    first (ties: the earlier position), and their similarities."""
    if k <= 0 or not len(vectors):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    matrix = np.asarray(vectors, dtype=np.float32)
    query = np.asarray(vector, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    similarity = matrix @ query / np.maximum(norms, 1e-12)
    count = len(similarity)
    best = np.argpartition(-similarity, k - 1)[:k] if k < count else np.arange(count)
    best = best[np.lexsort((best, -similarity[best]))]
    return best, similarity[best]

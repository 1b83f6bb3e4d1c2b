"""Chunk texts kept beside a build's vectors, in a SQLite file of their own, rather than in
Chroma's document store: Chroma indexes every document for full-text search as it writes, which
took two thirds of the time a chunk spent being stored (docs/benchmarks.md, "Ingest").

Local builds written since keep their texts here (`<build>/texts.sqlite3`) and say so in their
collection's metadata; older builds and builds on a Chroma server keep them as documents, and
readers read both. A published build's file never changes, so readers open it immutable. The file
records how many texts it holds (counting a million rows took most of a second at every start);
files written before that are counted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from index.integrity import check_sqlite_file
from index.layout import damaged

TEXTS_FILE = "texts.sqlite3"
_LOOKUP = 500  # ids per query (SQLite allows at least 999 parameters)


class TextWriter:
    """A new build's texts, added page by page and committed once, before the build is checked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE chunks (id TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE facts (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._count = 0

    def add(self, rows: Iterable[tuple[str, str]]) -> None:
        cursor = self._db.executemany("INSERT INTO chunks (id, text) VALUES (?, ?)", rows)
        self._count += cursor.rowcount

    def commit(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO facts VALUES ('chunks', ?)", (self._count,))
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class TextReader:
    """A published build's texts, looked up by chunk id (safe to share between threads)."""

    def __init__(self, path: Path, expected: int, recount: bool = False) -> None:
        """Open `path`, which must hold `expected` texts: as it records, or with `recount` as
        its rows are counted."""
        check_sqlite_file(path)
        try:
            self._db = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
            )
            count = _count(self._db, recount)
        except sqlite3.Error as e:
            raise damaged(f"The chunk texts {path} are damaged ({e})") from e
        if count != expected:
            self._db.close()
            raise damaged(f"The chunk texts {path} hold {count} chunks, not {expected}")
        self.path = path
        self._lock = threading.Lock()

    def texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """The texts of those of `chunk_ids` the build holds."""
        found: dict[str, str] = {}
        with self._lock:
            for begin in range(0, len(chunk_ids), _LOOKUP):
                page = list(chunk_ids[begin : begin + _LOOKUP])
                marks = ",".join("?" * len(page))
                try:
                    rows = self._db.execute(
                        f"SELECT id, text FROM chunks WHERE id IN ({marks})", page
                    ).fetchall()
                except sqlite3.Error as e:
                    raise damaged(f"The chunk texts {self.path} are damaged ({e})") from e
                found.update(rows)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _count(db: sqlite3.Connection, recount: bool) -> int:
    """How many texts the file holds: as it recorded, or counted (a file written before)."""
    recorded = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'facts'"
    if not recount and db.execute(recorded).fetchone():
        row = db.execute("SELECT value FROM facts WHERE name = 'chunks'").fetchone()
        if row is not None:
            return int(row[0])
    return int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])

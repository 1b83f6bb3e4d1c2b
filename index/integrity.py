"""Checks of a build's database file that do not open Chroma (which writes as it opens), and
telling a damaged database from one that cannot be written."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from index.layout import damaged


def cannot_write(directory: Path, error: Exception) -> bool:
    """Whether Chroma failed to open a build because its folder is read-only or its disk full
    (SQLite's READONLY and FULL errors), not because the build is damaged."""
    text = str(error)
    readonly = not os.access(directory / "chroma.sqlite3", os.W_OK)
    return readonly or "readonly database" in text or "database or disk is full" in text


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

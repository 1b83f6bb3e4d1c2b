"""A build's texts file records how many texts it holds, so opening it does not count a million
rows; a file written before that is counted, and a writer always counts what it wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from index.errors import IndexDamagedError
from index.texts import TextReader, TextWriter


def written(path: Path, count: int) -> Path:
    writer = TextWriter(path)
    writer.add((f"c{n}", f"text {n}") for n in range(count))
    writer.commit()
    writer.close()
    return path


def test_the_count_is_read_as_recorded_or_counted(tmp_path: Path) -> None:
    path = written(tmp_path / "texts.sqlite3", 7)
    TextReader(path, 7).close()
    with pytest.raises(IndexDamagedError, match="hold 7 chunks, not 8"):
        TextReader(path, 8)
    with sqlite3.connect(path) as db:  # rows lost behind the record's back
        db.execute("DELETE FROM chunks WHERE id = 'c0'")
    reader = TextReader(path, 7)  # opening trusts the record...
    assert reader.texts(["c0", "c1"]) == {"c1": "text 1"}  # ...and a lookup finds the loss
    reader.close()
    with pytest.raises(IndexDamagedError, match="hold 6 chunks, not 7"):
        TextReader(path, 7, recount=True)  # as the writer checks its build


def test_a_file_without_the_record_is_counted(tmp_path: Path) -> None:
    path = written(tmp_path / "texts.sqlite3", 5)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE facts")  # as written before the record existed
    TextReader(path, 5).close()
    with pytest.raises(IndexDamagedError, match="hold 5 chunks, not 4"):
        TextReader(path, 4)

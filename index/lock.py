"""One writer at a time: the lock `sync` and `rebuild` hold while they change an index.

An OS file lock (flock, through the filelock package): it dies with its process, so a killed
writer never leaves a stale lock behind. Beside it, `writer.json` says who holds it, for the message
a second writer gets. Readers never take it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from index.errors import IndexBusyError
from index.layout import IndexLayout

WAIT_SECONDS = 2.0


@contextmanager
def writer_lock(layout: IndexLayout, wait_s: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the index's writer lock; `IndexBusyError` naming the holder if it is taken."""
    layout.root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(layout.lock_path, timeout=wait_s, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise IndexBusyError(
            f"Another process is writing the index at {layout.root}: {describe_holder(layout)}. "
            "Wait for it to finish (or stop it), then run this again."
        ) from None
    try:
        record = {
            "pid": os.getpid(),
            "command": " ".join([os.path.basename(sys.orig_argv[0]), *sys.orig_argv[1:]]),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        layout.holder_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        yield
    finally:
        lock.release()


def describe_holder(layout: IndexLayout) -> str:
    """`pid 123 (`python -m index sync`, since 2025-01-01T10:00:00+00:00)`, or what is known."""
    try:
        record = json.loads(layout.holder_path.read_text(encoding="utf-8"))
        return f"pid {record['pid']} (`{record['command']}`, since {record['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"

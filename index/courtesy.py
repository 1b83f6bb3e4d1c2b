"""Index jobs pause while an answer is being written, so the answer keeps its speed.

On a small machine an embedding batch and the language model compete for the same cores (on two
cores, or two hardware threads of one, even a job at the lowest priority slowed an answer's first
token 2.6x). The process writing an answer keeps a marker file fresh (`answering`); an index job
checks it before each embedding batch and waits while it is fresh, at most `MAX_WAIT_S` a batch,
so a stream of answers can slow the job but never stop it. A marker left by a process that died
goes stale in `STALE_S`. One marker per user of the machine.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

STALE_S = 2.0
MAX_WAIT_S = 5.0
POLL_S = 0.05


def marker_path() -> Path:
    """The marker: in the user's runtime folder, else the temporary folder, per user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    user = os.getuid() if hasattr(os, "getuid") else 0
    return Path(base) / f"citeqa-{user}" / "answering"


def mark_answering(path: Path | None = None) -> None:
    """Say that an answer is being written now (call again at least every `STALE_S`)."""
    target = path or marker_path()
    with contextlib.suppress(OSError):
        target.parent.mkdir(mode=0o700, exist_ok=True)
        target.touch()


def clear_answering(path: Path | None = None) -> None:
    """Say that the answer is written."""
    with contextlib.suppress(OSError):
        (path or marker_path()).unlink()


def answering(path: Path | None = None) -> bool:
    """True while some process is writing an answer."""
    try:
        age = time.time() - (path or marker_path()).stat().st_mtime
    except OSError:
        return False
    return age < STALE_S


def wait_while_answering(path: Path | None = None, max_wait_s: float = MAX_WAIT_S) -> float:
    """Wait while an answer is being written, at most `max_wait_s`; the seconds waited."""
    started = time.monotonic()
    while answering(path) and time.monotonic() - started < max_wait_s:
        time.sleep(POLL_S)
    return time.monotonic() - started

"""Where an index lives on disk: its builds, the pointer to the live one, the writer's lock.

```
<index_dir>/<collection>/
    CURRENT                   the live build's id; replaced in one rename when a build is ready
    writer.lock, writer.json  the writers' lock and who holds it (index.lock)
    signatures.npz            the articles' MinHash signatures, kept by writers (a cache)
    builds/<build id>/
        chroma/               the Chroma directory (local mode; on the server otherwise)
        keyword/              the BM25 keyword index
        texts.sqlite3         the chunk texts (index.texts; older builds keep them in chroma/)
        manifest.json         per-article content hashes and chunk ids (index.manifest)
```

Readers resolve `CURRENT` and never write; a build directory that `CURRENT` does not name is
unfinished or replaced, and the next writer removes it. Nothing here knows Chroma.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from index.errors import IndexDamagedError

REBUILD_HINT = "python -m index rebuild"
POINTER = "CURRENT"
_BUILD_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")


@dataclass(frozen=True, slots=True)
class IndexLayout:
    """The paths of one collection's index under `index_dir`."""

    index_dir: Path
    collection: str

    @property
    def root(self) -> Path:
        return self.index_dir / self.collection

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    @property
    def signatures_path(self) -> Path:
        return self.root / "signatures.npz"

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def lock_path(self) -> Path:
        return self.root / "writer.lock"

    @property
    def holder_path(self) -> Path:
        return self.root / "writer.json"

    def build_dir(self, build_id: str) -> Path:
        return self.builds / build_id

    def chroma_dir(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "chroma"

    def keyword_dir(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "keyword"

    def texts_path(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "texts.sqlite3"

    def vectors_path(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "vectors.npy"

    def manifest_path(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "manifest.json"

    def legacy_index(self) -> bool:
        """Whether `index_dir` holds an index in the layout before builds (one Chroma folder)."""
        return (self.index_dir / "chroma.sqlite3").is_file()


def new_build_id(now: dt.datetime | None = None) -> str:
    """A fresh build id: UTC time to the second and 6 random hex digits (they sort by time)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def is_build_id(text: str) -> bool:
    return _BUILD_ID.fullmatch(text) is not None


def read_pointer(layout: IndexLayout) -> str | None:
    """The live build's id, or None when nothing was ever published; damage raises."""
    try:
        raw = layout.pointer.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise damaged(f"The index pointer {layout.pointer} cannot be read ({e})") from e
    return parse_pointer(raw, layout)


def parse_pointer(raw: str, layout: IndexLayout) -> str:
    """The build id in a pointer file's text; `IndexDamagedError` if it names none."""
    try:
        build_id = str(json.loads(raw)["build"])
    except (ValueError, TypeError, KeyError) as e:
        raise damaged(f"The index pointer {layout.pointer} is damaged") from e
    if not is_build_id(build_id):
        raise damaged(f"The index pointer {layout.pointer} names no build ({build_id!r})")
    return build_id


def pointer_signature(layout: IndexLayout) -> tuple[int, int, int] | None:
    """Changes whenever the pointer is replaced (inode, size, mtime); None without one."""
    try:
        found = layout.pointer.stat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


def write_pointer(layout: IndexLayout, build_id: str) -> None:
    """Make `build_id` the live build, in one atomic rename (readers see old or new, never half)."""
    if not is_build_id(build_id):
        raise ValueError(f"not a build id: {build_id!r}")
    record = {
        "build": build_id,
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_atomically(layout.pointer, json.dumps(record) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, flush it to disk, then rename it over."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Flush a directory entry (a rename) to disk where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_builds(layout: IndexLayout) -> list[str]:
    """Every build directory's id, oldest first."""
    if not layout.builds.is_dir():
        return []
    return sorted(p.name for p in layout.builds.iterdir() if is_build_id(p.name))


def remove_stale_files(layout: IndexLayout, keep: set[str]) -> list[str]:
    """Remove build directories not in `keep` and leftover temporary files; their ids."""
    removed = []
    for build_id in list_builds(layout):
        if build_id not in keep:
            shutil.rmtree(layout.build_dir(build_id), ignore_errors=True)
            removed.append(build_id)
    if layout.root.is_dir():
        for pattern in (f".{POINTER}.*.tmp", f".{layout.signatures_path.name}.*.tmp.npz"):
            for leftover in layout.root.glob(pattern):
                leftover.unlink(missing_ok=True)
    return removed


def damaged(what: str) -> IndexDamagedError:
    """An `IndexDamagedError` that says how to fix it."""
    return IndexDamagedError(f"{what}. Rebuild the index with: {REBUILD_HINT}")

"""`python -m index rebuild|sync|stats`: build the article index, keep it in step, show it."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from index.cli import run_command
from index.config import IndexSettings
from index.errors import CiteqaIndexError

if TYPE_CHECKING:
    from index.plan import IndexReport
    from index.progress import ProgressCallback

SOURCE_HELP = (
    "a file, folder or http(s) URL of articles or a feed; repeat for several "
    "(default: CITEQA_ARTICLES_DIR)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m index", description=__doc__)
    parser.add_argument("--index-dir", type=Path, help="index directory (CITEQA_INDEX_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser(
        "rebuild", help="embed every article into a new index, then switch to it"
    )
    sync = commands.add_parser(
        "sync", help="embed new and changed articles, drop removed ones, keep the rest"
    )
    for command in (rebuild, sync):
        command.add_argument("--source", action="append", metavar="SOURCE", help=SOURCE_HELP)
        command.add_argument("--quiet", action="store_true", help="no progress bars")
    rebuild.add_argument(
        "--if-missing", action="store_true", help="do nothing when an index already exists"
    )
    commands.add_parser("stats", help="show what is indexed")
    return parser


# Building and syncing run at the lowest CPU priority, so that an answer's single model thread
# wins its core against them (they also pause for answers: `index.courtesy`). On a quiet machine a
# lower priority costs the index job nothing (docs/model-worker.md, the busy machine).
INDEX_NICENESS = 19


def yield_to_answers() -> None:
    """Lower this process's CPU priority to `INDEX_NICENESS` (where the system has `nice`)."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(max(0, INDEX_NICENESS - os.nice(0)))


def main(argv: Sequence[str] | None = None) -> int:
    interrupted = "Error: interrupted; the previous index is unchanged."
    return run_command(build_parser(), argv, run, interrupted=interrupted)


def run(args: argparse.Namespace) -> int:
    """The command named in `args`; its exit status."""
    settings = IndexSettings.from_env()
    if args.index_dir is not None:
        settings = settings.model_copy(update={"index_dir": args.index_dir})
    if args.command == "stats":
        return run_stats(settings)
    yield_to_answers()
    if args.command == "rebuild" and args.if_missing and index_exists(settings):
        print(f"Index at {settings.index_dir} already exists; not rebuilding.")
        return 0
    sources: list[str | Path] = list(args.source or [settings.articles_dir])
    return run_update(settings, args.command, sources, quiet=args.quiet)


def index_exists(settings: IndexSettings) -> bool:
    from index.reader import open_store

    try:
        open_store(settings.index_dir, settings.collection, settings.chroma_url).close()
    except CiteqaIndexError:
        return False
    return True


class StepBars:
    """One progress bar per step of a rebuild or sync, each closed when the next one starts."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._stack = ExitStack()
        self._step: str | None = None
        self._bar: ProgressCallback | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        from index.build import STEP_UNITS
        from index.progress import progress_bar

        if step != self._step or self._bar is None:
            self._stack.close()
            unit = STEP_UNITS.get(step, "it")
            self._bar = self._stack.enter_context(progress_bar(step, unit, self._quiet))
            self._step = step
        self._bar(done, total)

    def close(self) -> None:
        self._stack.close()


def run_update(
    settings: IndexSettings, command: str, sources: list[str | Path], *, quiet: bool
) -> int:
    from index.build import update_index
    from index.embeddings import Embedder, open_embedder_for
    from index.plan import Mode

    def load_model() -> Embedder:  # only once the writer knows it has work for it
        return open_embedder_for(settings)

    bars = StepBars(quiet)
    try:
        mode: Mode = "sync" if command == "sync" else "rebuild"
        report = update_index(settings, load_model, sources, mode=mode, steps=bars)
    finally:
        bars.close()
    print_report(report, settings)
    return 0


def print_report(report: IndexReport, settings: IndexSettings) -> None:
    where = settings.chroma_url or str(settings.index_dir)
    print(f"Read:       {report.inputs} input(s)")
    print(f"Added:      {len(report.added)}")
    print(f"Updated:    {len(report.updated)}")
    print(f"Unchanged:  {len(report.unchanged)}")
    print(f"Removed:    {len(report.removed)}")
    print(f"Duplicates: {len(report.duplicates)}")
    for duplicate in report.duplicates:
        print(f"  - {duplicate.origin}: same story as {duplicate.kept_id} ({duplicate.similarity})")
    print(f"Rejected:   {len(report.rejected)}")
    for rejection in report.rejected:
        print(f"  - {rejection.origin}: {rejection.reason}")
    print(
        f"Chunks:     {report.chunks_total} in the index "
        f"({report.chunks_embedded} embedded, {report.chunks_copied} reused)"
    )
    state = "now live" if report.published else "unchanged, nothing written"
    print(f"Build:      {report.build_id} ({state})")
    if report.layers:
        print(
            f"Layers:     {report.chunks_rewritten} reused chunk(s) copied into the build; the "
            f"rest read from {report.layers} earlier build(s)"
        )
    print(f"Index:      {where} (collection {settings.collection!r})")
    print(f"Seconds:    {report.seconds:.1f}")


def run_stats(settings: IndexSettings) -> int:
    from index.reader import open_store

    store = open_store(settings.index_dir, settings.collection, settings.chroma_url)
    stats = store.stats()
    store.close()
    fp = stats.fingerprint
    print(
        f"Index:            {settings.chroma_url or settings.index_dir} "
        f"(collection {settings.collection!r})"
    )
    layers = f" (and {stats.layers} earlier build(s) it reads)" if stats.layers else ""
    print(f"Build:            {stats.build_id}{layers}")
    print(f"Built at:         {stats.built_at or 'unknown'}")
    print(f"Articles:         {stats.articles}")
    print(f"Chunks:           {stats.chunks}")
    print(f"Embedding model:  {fp.embedding_model} ({fp.dimension} dimensions)")
    print(f"Chunking:         {fp.chunk_tokens} word pieces, {fp.chunk_overlap_tokens} overlap")
    for source, count in stats.sources:
        print(f"  {source}: {count} article(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

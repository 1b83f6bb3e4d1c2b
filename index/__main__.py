"""`python -m index rebuild|stats`: build the article index and show what is in it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from index.config import IndexSettings
from index.errors import CiteqaIndexError
from index.offline import enforce_offline


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m index", description=__doc__)
    parser.add_argument("--index-dir", type=Path, help="index directory (CITEQA_INDEX_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("rebuild", help="build the index anew from a folder or file")
    rebuild.add_argument(
        "--source", type=Path, help="folder or file of articles (default: CITEQA_ARTICLES_DIR)"
    )
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.add_argument(
        "--if-missing", action="store_true", help="do nothing when an index already exists"
    )
    commands.add_parser("stats", help="show what is indexed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    enforce_offline()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = IndexSettings.from_env()
        if args.index_dir is not None:
            settings = settings.model_copy(update={"index_dir": args.index_dir})
        if args.command == "rebuild":
            if args.if_missing and index_exists(settings):
                print(f"Index at {settings.index_dir} already exists; not rebuilding.")
                return 0
            return run_rebuild(settings, args.source or settings.articles_dir, quiet=args.quiet)
        return run_stats(settings)
    except CiteqaIndexError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted; the previous index is unchanged.", file=sys.stderr)
        return 1


def index_exists(settings: IndexSettings) -> bool:
    from index.store import open_store

    try:
        open_store(settings.index_dir, settings.collection)
    except CiteqaIndexError:
        return False
    return True


def run_rebuild(settings: IndexSettings, source: Path, *, quiet: bool) -> int:
    from index.build import rebuild_index
    from index.embeddings import open_embedder
    from index.progress import progress_bar

    embedder = open_embedder(settings.embedding_model_path, settings.embed_batch_size)
    with progress_bar("Embedding", unit="chunk", quiet=quiet) as progress:
        _, report = rebuild_index(settings, embedder, source, progress)
    print(f"Articles read:    {report.articles_read}")
    print(f"Articles rejected: {len(report.rejected)}")
    for rejection in report.rejected:
        print(f"  - {rejection.origin}: {rejection.reason}")
    print(f"Chunks written:   {report.chunks_written}")
    print(f"Seconds:          {report.seconds:.1f}")
    print(f"Index:            {settings.index_dir} (collection {settings.collection!r})")
    return 0


def run_stats(settings: IndexSettings) -> int:
    from index.store import open_store

    stats = open_store(settings.index_dir, settings.collection).stats()
    fp = stats.fingerprint
    print(f"Index:            {settings.index_dir} (collection {settings.collection!r})")
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

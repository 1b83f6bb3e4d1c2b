"""Benchmark at a million chunks: what a large index costs to build, search, open, keep in memory
and keep in step, on one machine; then the same million on a Chroma server read by two app
processes while a third syncs.

    python bench/scale.py [--sizes 150000,1000000] [--cache bench/.cache]
        [--out bench/results/scale.json] [--server | --no-server] [--server-size N]
        [--queries 300] [--answers 100] [--starts 3] [--no-ui] [--eval-dir ../shared/eval]

For each size (in chunks):

- build: the project's own build (`index_articles`, through bench/search.py's `ensure_index`),
  kept in `--cache` and timed the first time; a later run reuses it and says so;
- search: bench/search.py's `measure`: the app's hybrid search (embedding, BM25, vector query,
  fusion, fetch) at p50/p95 over `--queries` dev questions, and HNSW recall@10 against exact
  search over every stored vector;
- one-day filter: the same search with the app's date filter (`PassageFilter`, from and to the
  same day) on days that hold chunks (the busiest, the quietest and between); p50/p95, and
  whether every passage returned is from that day and as many as the day holds, up to k;
- cold start and memory: bench/startup.py's fresh process (extractive answers, no language
  model), `--starts` times: seconds to answer-ready, resident set (VmRSS, peak VmHWM) at
  answer-ready, and after the page is built and `--answers` questions are answered;
- one-article sync: one article's text changes in the source file (a sentence at its end, which
  the next run swaps for another, so that the model embeds the changed passage every time) and
  `sync_index` brings the index in step: its own seconds (reading the sources included), chunks
  embedded (and of those, embedded by the model rather than taken from the cache) and reused.

Then, unless `--no-server`, a `chroma run` server holds the corpus of `--server-size` chunks
(default: the largest size): two reader processes ask questions without pause through the app's
retriever while a third process makes the one-article sync (through `sync_index`, at normal
priority; `python -m index sync` would lower its own); each reader's p50/p95 (over all and while
the sync ran), every exception it met (with its message) and whether it moved to the new build;
the sync's seconds; then the app's cold start and memory reading the server's index (as above);
the server's memory. Where the local run of the same size has built its index, the server gets a
copy of that build (its Chroma folder, the collection renamed as a server build's; see
`seed_server`) instead of an ingest through the server, which takes hours at a million chunks
(`--no-server-from-local` builds through the server).

The corpus is bench/search.py's: the real evaluation articles (dated news and undated encyclopedia
articles taken in turn), chunked by the project, their vectors computed once into `--cache`, and
beyond the real chunks the same articles again under new ids (`<id>~n`) with seeded noise on
each repeated chunk's vector. A sync reads its articles from files, and the loader merges
near-duplicates, so here each repeated copy also carries accents on the first vowel of a seeded
quarter of its words: a distinct text for the loader, the same word pieces for the embedding model
(its tokenizer drops accents), so the copy's chunks are cut the same way and their cached vectors
still apply. The corpus of each size is written once as a JSON Lines file in the evaluation
schema (`<cache>/scale-<size>/articles.jsonl`), read back by the project's loader and indexed
from what it read, so that a sync of that file changes only the article edited.

The first run embeds the real corpus once (about 15 minutes on 2 cores) and builds every index;
later runs reuse them. Machine, CPU model, load average before and after, every figure and the
wall time of each phase go to `--out`; the table goes to the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import startup
from search import (
    BUILD_RECORD,
    DEFAULT_EVAL_DIR,
    WARMUP,
    CachedEmbedder,
    VectorCache,
    build_key,
    corpus_of,
    ensure_index,
    hash_ids,
    load_bench_questions,
    load_real_articles,
    measure,
    percentile,
    remember_build,
)

from index.backends import ServerBackend, chroma_settings
from index.build import chunk_articles, sync_index
from index.chunking import searchable_text
from index.embeddings import Embedder, open_embedder
from index.errors import CiteqaIndexError
from index.fingerprint import fingerprint_for
from index.formats import article_json
from index.layout import IndexLayout, read_pointer
from index.manifest import load_manifest
from index.reader import open_store
from index.sources import load_sources
from index.types import Article
from qa import Settings, enforce_offline
from qa.chain import build_retriever
from qa.retrieval import PassageFilter

ROOT = Path(__file__).resolve().parent.parent
CORPUS_VERSION = "1"  # bump when what is written for a size changes: its index is then rebuilt
ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"}  # one code point each
ACCENT_SHARE = 0.25  # of a repeated copy's words (loader similarity to the original about 0.1)
_WORD = re.compile(r"[^\W\d_]+")
# What a sync changes: one of these sentences at the end of one article, the other one the next
# run, so that each sync embeds the changed passage with the model.
EDITS = (
    "\n\nThis article was updated after it was first indexed.",
    "\n\nThis article was corrected after it was first indexed.",
)
FILTER_DAYS = 5  # days the one-day filter is tried on
SYNCS = 3  # one-article syncs in a row; the first also keeps the texts' signatures
WARM_S = 5.0  # seconds the readers run before the sync starts
AFTER_S = 3.0  # seconds they run on after they moved to the sync's build
FOLLOW_TIMEOUT_S = 300.0  # longest wait for the readers to move to the sync's build
SERVER_START_S = 120.0
# The targets, and the sizes from which each applies.
TARGET_SIZE = 1_000_000
SYNC_TARGET_SIZE = 150_000
TARGET_SYNC_S = 5.0
TARGET_P95_MS = 50.0
TARGET_RECALL = 0.98
TARGET_RSS_MB = 2000.0
TARGET_READY_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child == "reader":
        return child_reader(args)
    if args.child == "sync":
        return child_sync(args)
    sizes = [int(s) for s in args.sizes.split(",") if s]  # "": the server part alone
    server_size = args.server_size or max(sizes)
    if min([*sizes, server_size]) < 1 or args.starts < 1 or args.queries < 1:
        print("Error: sizes, --starts and --queries must be at least 1", file=sys.stderr)
        return 2
    enforce_offline()
    # The local runs read a local index whatever the environment says; the server run is told.
    os.environ.pop("CITEQA_CHROMA_URL", None)
    payload = benchmark(args, sizes, server_size if args.server else None)
    print_tables(payload)
    print(f"\nWrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="150000,1000000", help="index sizes, in chunks")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument(
        "--server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the Chroma server part (default: yes)",
    )
    parser.add_argument(
        "--server-size", type=int, help="chunks on the server (default: the largest size)"
    )
    parser.add_argument(
        "--server-from-local",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give the server a copy of the local build of the same size, when there is one, "
        "instead of building through the server (default: yes)",
    )
    parser.add_argument("--queries", type=int, default=300, help="dev questions timed per size")
    parser.add_argument("--answers", type=int, default=100, help="answers per fresh start")
    parser.add_argument("--starts", type=int, default=3, help="fresh starts per size")
    parser.add_argument("--no-ui", action="store_true", help="starts without gradio and the page")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument(
        "--child-timeout",
        type=float,
        default=14400.0,
        help="seconds a child process may take (default 4 hours: a sync on the server at a "
        "million chunks may copy every chunk)",
    )
    # A child's side (a reader or the writer of the server run), its result written as JSON.
    parser.add_argument("--child", choices=("reader", "sync"), help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chroma-url", help=argparse.SUPPRESS)
    parser.add_argument("--questions-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--status", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--article", help=argparse.SUPPRESS)
    parser.add_argument("--line", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def benchmark(
    args: argparse.Namespace, sizes: list[int], server_size: int | None
) -> dict[str, Any]:
    began = time.perf_counter()
    load_before = startup.load_average()
    phases: dict[str, float] = {}
    with timed(phases, "corpus: read, chunk, embed what is missing"):
        embedder = open_embedder()
        articles = interleave(load_real_articles(args.eval_dir, args.cache))
        settings = Settings(index_dir=args.cache / "unused")
        fingerprint = fingerprint_for(settings, embedder)
        by_article, chunks = chunk_articles(settings, embedder, fingerprint, articles)
        counts = {a: len(c) for a, c in by_article.items()}
        wanted = sorted({*sizes, *([server_size] if server_size else [])})
        corpora = {size: corpus_of(articles, counts, size) for size in wanted}
        needed = {base_id(a.id) for corpus in corpora.values() for a in corpus}
        vectors = VectorCache(args.cache / "vectors" / embedder.name, embedder)
        vectors.fill(
            [searchable_text(c, settings.embed_titles) for c in chunks if c.article_id in needed]
        )
        texts = CachedTexts(vectors)
        questions = load_bench_questions(args.eval_dir, args.queries)
        answers, answers_from = startup.load_questions(args.eval_dir / "squad_v1.1", args.answers)
    print(f"real corpus: {len(articles)} articles, {len(chunks)} chunks", flush=True)
    results: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "complete": False,  # until every part has run: the file is written after each
        "machine": {**startup.machine(), "cpu_model": cpu_model(), "memory_gb": memory_gb()},
        "load_average": {"before": load_before, "after": None},
        "options": {
            "sizes": sizes,
            "server_size": server_size,
            "queries": len(questions),
            "answers": len(answers),
            "answers_from": answers_from,
            "starts": args.starts,
            "ui": not args.no_ui,
        },
        "real_corpus": {"articles": len(articles), "chunks": len(chunks)},
        "phases_s": phases,
        "results": results,
        "server": None,
    }
    for size in sizes:
        results.append(run_size(args, size, corpora[size], texts, embedder, questions, answers))
        write_payload(args.out, payload)
    if server_size is not None:
        corpus = corpora[server_size]
        payload["server"] = run_server(
            args, server_size, corpus, texts, embedder, questions, answers
        )
    payload["load_average"]["after"] = startup.load_average()
    payload["targets"] = check_targets(results, payload["server"])
    payload["wall_s"] = round(time.perf_counter() - began, 1)
    payload["complete"] = True
    write_payload(args.out, payload)
    return payload


def write_payload(out: Path, payload: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2), encoding="utf-8")


# ---- the corpus: distinct repeated copies, written where a sync can read them ----


def interleave(articles: Sequence[Article]) -> list[Article]:
    """Dated and undated articles taken in turn, so that every size holds both."""
    dated = [a for a in articles if a.published]
    undated = [a for a in articles if not a.published]
    return [a for pair in itertools.zip_longest(dated, undated) for a in pair if a is not None]


def copy_number(article_id: str) -> int:
    """`n` for corpus_of's copy `<id>~n`, 0 for a real article."""
    _, separator, number = article_id.rpartition("~")
    return int(number) if separator and number.isdigit() else 0


def base_id(article_id: str) -> str:
    return article_id.rpartition("~")[0] if copy_number(article_id) else article_id


def distinct_copy(article: Article) -> Article:
    """A repeated copy with an accent on the first vowel of a seeded quarter of its words (a
    real article as it is). Each accented letter is one code point, so every offset stays."""
    if not copy_number(article.id):
        return article
    draw = random.Random(article.id)

    def accent(match: re.Match[str]) -> str:
        word = match.group(0)
        if draw.random() >= ACCENT_SHARE:
            return word
        for at, letter in enumerate(word):
            if letter in ACCENTS:
                return word[:at] + ACCENTS[letter] + word[at + 1 :]
        return word

    return replace(article, text=_WORD.sub(accent, article.text))


def fold(text: str) -> str:
    """`text` without accents (what the embedding model's tokenizer reads)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


class CachedTexts:
    """The cached text a chunk text stands for: itself, or the one an accented copy came from."""

    def __init__(self, vectors: VectorCache) -> None:
        self.vectors = vectors
        self._folded = {fold(t): t for t in vectors.rows}

    def original(self, text: str) -> str | None:
        if text in self.vectors.rows:
            return text
        return self._folded.get(fold(text))


class CopyAwareEmbedder(CachedEmbedder):
    """bench/search.py's `CachedEmbedder` (cached vectors, seeded noise on each repeat) for a
    corpus whose repeated copies carry accents."""

    def __init__(self, embedder: Embedder, texts: CachedTexts) -> None:
        super().__init__(embedder, texts.vectors)
        self._texts = texts

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        originals: list[str] = []
        for text in texts:
            found = self._texts.original(text)
            if found is None:
                raise RuntimeError(
                    f"No cached vector for the chunk {text[:60]!r}...: a repeated copy was cut "
                    "otherwise than its original (does the tokenizer still drop accents?)"
                )
            originals.append(found)
        return super().embed_documents(originals)


class SyncEmbedder(Embedder):
    """The embedding model for a sync: cached vectors for the chunk texts the cache holds, the
    model itself for the others (the edited passage); counts both."""

    def __init__(self, embedder: Embedder, texts: CachedTexts) -> None:
        super().__init__(embedder.engine, embedder.name, embedder.count_tokens, embedder.batch_size)
        self._texts = texts
        self.embedded = 0
        self.cached = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        known = [self._texts.original(t) for t in texts]
        missing = [t for t, k in zip(texts, known, strict=True) if k is None]
        fresh = iter(self.encode(missing)) if missing else iter(())
        self.embedded += len(missing)
        self.cached += len(texts) - len(missing)
        rows = [self._texts.vectors.vector(k) if k is not None else next(fresh) for k in known]
        return [[float(x) for x in row] for row in rows]


def write_source(folder: Path, corpus: Sequence[Article]) -> tuple[Path, bool]:
    """The corpus as JSON Lines in the evaluation schema, in `folder`, written unless it is
    there already; and whether it was written."""
    source = folder / "articles.jsonl"
    key_file = folder / "corpus.json"
    key = hash_ids([CORPUS_VERSION, *(a.id for a in corpus)])
    kept = json.loads(key_file.read_text(encoding="utf-8")) if key_file.is_file() else {}
    if source.is_file() and kept.get("key") == key:
        return source, False
    folder.mkdir(parents=True, exist_ok=True)
    part = source.with_suffix(".part")
    with part.open("w", encoding="utf-8") as out:
        for article in corpus:
            out.write(json.dumps(article_json(distinct_copy(article))) + "\n")
    os.replace(part, source)
    key_file.write_text(json.dumps({"key": key, "articles": len(corpus)}), encoding="utf-8")
    return source, True


def read_source(source: Path) -> tuple[list[Article], dict[str, Any]]:
    """The articles of `source` as the project's loader (and so a sync) reads them."""
    started = time.perf_counter()
    loaded = load_sources([source])
    read = {
        "articles": len(loaded.articles),
        "duplicates": len(loaded.duplicates),
        "rejected": len(loaded.rejected),
        "read_s": round(time.perf_counter() - started, 2),
    }
    if loaded.duplicates or loaded.rejected:
        print(f"  the loader left out {read['duplicates']} duplicates, {read['rejected']} rejected")
    return list(loaded.articles), read


def prepare_corpus(
    folder: Path, corpus: Sequence[Article], index_dir: Path
) -> tuple[Path, list[Article], dict[str, Any]]:
    """Write (once) and read the corpus; an index built from another corpus is built again."""
    source, written = write_source(folder, corpus)
    if written:
        (index_dir / BUILD_RECORD).unlink(missing_ok=True)
    articles, read = read_source(source)
    return source, articles, {"file_mb": round(source.stat().st_size / 1e6, 1), **read}


def build_index(
    index_dir: Path,
    articles: Sequence[Article],
    texts: CachedTexts,
    embedder: Embedder,
    chroma_url: str | None = None,
) -> dict[str, Any]:
    """bench/search.py's `ensure_index` with this corpus's embedder; whether it was reused."""
    record = index_dir / BUILD_RECORD
    if chroma_url is not None and record.exists() and not opens(index_dir, chroma_url):
        record.unlink()  # the record outlived the server's data
    before = record.stat().st_mtime_ns if record.exists() else None
    built = ensure_index(
        index_dir,
        articles,
        texts.vectors,
        embedder,
        chroma_url=chroma_url,
        chunk_embedder=CopyAwareEmbedder(embedder, texts),
    )
    return {**built, "reused": before == record.stat().st_mtime_ns}


def opens(index_dir: Path, chroma_url: str) -> bool:
    try:
        store = open_store(index_dir, Settings(index_dir=index_dir).collection, chroma_url)
    except CiteqaIndexError:
        return False
    store.close()
    return True


def index_state(index_dir: Path, chroma_url: str | None = None) -> dict[str, Any]:
    """What the live build holds: chunks, articles, and the earlier builds it reads."""
    store = open_store(index_dir, Settings(index_dir=index_dir).collection, chroma_url)
    try:
        stats = store.stats()
        return {
            "chunks": stats.chunks,
            "articles": stats.articles,
            "layers": getattr(stats, "layers", 0),
        }
    finally:
        store.close()


# ---- one size: build, search, one-day filter, start-up and memory, sync ----


def run_size(
    args: argparse.Namespace,
    size: int,
    corpus: Sequence[Article],
    texts: CachedTexts,
    embedder: Embedder,
    questions: Sequence[str],
    answers: Sequence[str],
) -> dict[str, Any]:
    print(f"\n{size} chunks:", flush=True)
    folder = args.cache / f"scale-{size}"
    index_dir = folder / "index"
    phases: dict[str, float] = {}
    with timed(phases, "corpus"):
        source, articles, corpus_info = prepare_corpus(folder, corpus, index_dir)
    with timed(phases, "build"):
        built = build_index(index_dir, articles, texts, embedder)
    state = index_state(index_dir)
    reused = " (reused; built earlier)" if built["reused"] else ""
    print(f"  index of {built['chunks']} chunks, {built['build_s']:.0f} s{reused}", flush=True)
    with timed(phases, "search"):
        search = measure(index_dir, questions)
    print(
        f"  search p50 {search['p50_ms']:.1f} ms, p95 {search['p95_ms']:.1f} ms, "
        f"recall@10 {search['recall_at_10']:.4f}",
        flush=True,
    )
    with timed(phases, "one-day filter"):
        day_filter = measure_day_filter(index_dir, questions)
    if day_filter["searches"]:
        print(f"  one-day filter p95 {day_filter['p95_ms']:.1f} ms", flush=True)
    with timed(phases, "start-up"):
        start = measure_startup(args, index_dir, answers)
    print(
        f"  answer-ready {start['answer_ready_s']['median']:.2f} s, RSS after the answers "
        f"{mb(start['rss_after_mb'])} MB",
        flush=True,
    )
    target = edit_target(articles)
    with timed(phases, "sync"):
        # The index was built from articles read beforehand, so the first sync also keeps every
        # text's near-duplicate signature for the next (as a rebuild from files would have).
        syncs = [
            sync_one_article(
                Settings(index_dir=index_dir), source, target, SyncEmbedder(embedder, texts)
            )
            for _ in range(SYNCS)
        ]
    sync = {**syncs[-1], "seconds": statistics.median(s["seconds"] for s in syncs[1:])}
    sync["runs_s"] = [s["seconds"] for s in syncs]
    print(
        f"  one-article sync {sync['seconds']:.2f} s (median of syncs 2-{SYNCS}; all: "
        f"{', '.join(f'{x:.2f}' for x in sync['runs_s'])}; {sync['chunks_embedded']} chunks "
        f"embedded, {sync['chunks_copied']} reused, {sync['layers']} layer(s))",
        flush=True,
    )
    return {
        "size": size,
        "chunks": built["chunks"],
        "articles": built["articles"],
        "corpus": corpus_info,
        "build": built,
        "index_before_sync": state,
        "search": search,
        "day_filter": day_filter,
        "startup": start,
        "sync": sync,
        "phases_s": phases,
    }


def measure_day_filter(
    index_dir: Path, questions: Sequence[str], days_wanted: int = FILTER_DAYS
) -> dict[str, Any]:
    """The app's search limited to one publication day, on days that hold chunks, each question
    on one of them in turn; whether the passages are from that day, and as many as it has."""
    retriever = build_retriever(Settings(index_dir=index_dir, retriever="hybrid"))
    try:
        stored = retriever.keyword.days if retriever.keyword is not None else None
        counts = Counter(d for d in stored or () if d)
        if not counts:
            return {"searches": 0, "note": "no dated chunks in this index"}
        days = pick_days(counts, days_wanted)
        for question in questions[:WARMUP]:
            retriever.search(question, filters=one_day(days[0]))
        seconds: list[float] = []
        per_day: dict[int, dict[str, Any]] = {
            d: {"chunks": counts[d], "seconds": [], "passages": 0, "outside": 0, "short": 0}
            for d in days
        }
        for number, question in enumerate(questions):
            day = days[number % len(days)]
            started = time.perf_counter()
            found = retriever.search(question, filters=one_day(day))
            elapsed = time.perf_counter() - started
            seconds.append(elapsed)
            row = per_day[day]
            row["seconds"].append(elapsed)
            row["passages"] += len(found.passages)
            row["outside"] += sum(p.chunk.published != iso_day(day) for p in found.passages)
            row["short"] += len(found.passages) < min(retriever.k, counts[day])
        return {
            "searches": len(seconds),
            "filtered_in_index": retriever.days_indexed,
            "dated_days": len(counts),
            "p50_ms": percentile(seconds, 50) * 1000,
            "p95_ms": percentile(seconds, 95) * 1000,
            "passages": sum(r["passages"] for r in per_day.values()),
            "outside_the_day": sum(r["outside"] for r in per_day.values()),
            "short": sum(r["short"] for r in per_day.values()),
            "k": retriever.k,
            "days": [
                {
                    "day": iso_day(day),
                    "chunks": row["chunks"],
                    "searches": len(row["seconds"]),
                    "p95_ms": percentile(row["seconds"], 95) * 1000,
                    "passages": row["passages"],
                    "outside_the_day": row["outside"],
                    "short": row["short"],
                }
                for day, row in per_day.items()
                if row["seconds"]
            ],
        }
    finally:
        retriever.store.close()


def pick_days(counts: Counter[int], wanted: int) -> list[int]:
    """Up to `wanted` days spread over how many chunks each holds, the busiest first."""
    ranked = sorted(counts, key=lambda d: (-counts[d], d))
    if len(ranked) <= wanted or wanted < 2:
        return ranked[: max(1, wanted)]
    step = (len(ranked) - 1) / (wanted - 1)
    return list(dict.fromkeys(ranked[round(i * step)] for i in range(wanted)))


def iso_day(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def one_day(day: int) -> PassageFilter:
    return PassageFilter(published_from=iso_day(day), published_to=iso_day(day))


def measure_startup(
    args: argparse.Namespace,
    index_dir: Path,
    answers: Sequence[str],
    chroma_url: str | None = None,
) -> dict[str, Any]:
    """bench/startup.py's fresh answering process, `--starts` times, on this index (its vectors
    on the Chroma server at `chroma_url`, if given)."""
    env = {
        **os.environ,
        "CITEQA_INDEX_DIR": str(index_dir.resolve()),
        "CITEQA_LLM_BACKEND": "extractive",
        **({"CITEQA_CHROMA_URL": chroma_url} if chroma_url else {}),
    }
    with tempfile.TemporaryDirectory(prefix="citeqa-scale-") as tmp:
        work = Path(tmp)
        questions_file = work / "questions.json"
        questions_file.write_text(json.dumps(list(answers)), encoding="utf-8")
        extra = ["--questions-file", str(questions_file), *(["--no-ui"] if args.no_ui else [])]
        runs = [
            startup.run_child("answer", env, work, number, args.child_timeout, extra)
            for number in range(1, args.starts + 1)
        ]
    seconds = startup.summarise([startup.timeline(run) for run in runs])
    memory = startup.summarise([startup.memory_rows(run) for run in runs])
    return {
        "starts": len(runs),
        "answer_ready_s": seconds["= answer-ready (wall)"],
        "rss_ready_mb": memory.get("RSS at answer-ready"),
        "rss_after_mb": memory.get("RSS after the answers"),
        "peak_after_mb": memory.get("peak RSS after the answers"),
        "seconds": seconds,
        "memory_mb": memory,
        "answers": [run["answers"] for run in runs],
        "index": runs[-1]["index"],
    }


def edit_target(articles: Sequence[Article]) -> tuple[str, int]:
    """The article a sync edits (the first dated real one: its vectors are the model's own) and
    its line in the source file."""
    real = [a for a in articles if not copy_number(a.id)]
    chosen = next((a for a in real if a.published), real[0])
    return chosen.id, int(chosen.origin.rpartition(":")[2])


def toggle_edit(source: Path, target: tuple[str, int]) -> str:
    """End the text of the target article in `source` with one of `EDITS`, the other one than
    it ends with now (the first if none); which."""
    article_id, line = target
    part = source.with_suffix(".part")
    direction = ""
    with source.open(encoding="utf-8") as lines, part.open("w", encoding="utf-8") as out:
        for number, text in enumerate(lines, start=1):
            if number == line:
                record = json.loads(text)
                if record["id"] != article_id:
                    raise RuntimeError(f"line {line} of {source} is not article {article_id}")
                body = str(record["text"])
                now = next((n for n, edit in enumerate(EDITS) if body.endswith(edit)), None)
                if now is not None:
                    body = body[: -len(EDITS[now])]
                chosen = 0 if now is None else (now + 1) % len(EDITS)
                record["text"], direction = body + EDITS[chosen], f"edit {chosen + 1}"
                text = json.dumps(record) + "\n"
            out.write(text)
    if not direction:
        raise RuntimeError(f"{source} has no line {line}")
    os.replace(part, source)
    return direction


def sync_one_article(
    settings: Settings, source: Path, target: tuple[str, int], embedder: SyncEmbedder
) -> dict[str, Any]:
    """Change one article in the source file and sync; the report. If the index held the new
    text already (a run stopped between the edit and the sync), the other edit is made."""
    began = time.time()
    for attempt in (1, 2):
        direction = toggle_edit(source, target)
        embedder.embedded = embedder.cached = 0
        sync_began = time.time()
        report = sync_index(settings, embedder, source)
        if report.published or attempt == 2:
            break
    return {
        "seconds": report.seconds,
        "article": target[0],
        "direction": direction,
        "attempts": attempt,
        "published": report.published,
        "updated": list(report.updated),
        "added": len(report.added),
        "removed": len(report.removed),
        "chunks_embedded": report.chunks_embedded,
        "chunks_copied": report.chunks_copied,
        "chunks_rewritten": getattr(report, "chunks_rewritten", None),
        "layers": getattr(report, "layers", None),
        "chunks_total": report.chunks_total,
        "build_id": report.build_id,
        "embedded_by_model": embedder.embedded,
        "vectors_from_cache": embedder.cached,
        "began_at": began,
        "sync_began_at": sync_began,
        "ended_at": time.time(),
        "wall_s": time.time() - began,
    }


# ---- the server run: two readers and a writer on one Chroma server ----


def run_server(
    args: argparse.Namespace,
    size: int,
    corpus: Sequence[Article],
    texts: CachedTexts,
    embedder: Embedder,
    questions: Sequence[str],
    answers: Sequence[str],
) -> dict[str, Any]:
    print(f"\nChroma server, {size} chunks:", flush=True)
    folder = args.cache / f"server-{size}"
    index_dir = folder / "index"
    phases: dict[str, float] = {}
    corpus_folder = server_corpus_folder(args, size, folder)
    with timed(phases, "corpus"):
        source, articles, corpus_info = prepare_corpus(
            corpus_folder, corpus, corpus_folder / "index"
        )
    seeded = None
    if corpus_folder != folder:
        with timed(phases, "server data copied from the local build"):
            seeded = seed_server(corpus_folder / "index", folder, index_dir)
    began = time.perf_counter()
    with chroma_server(folder / "chroma", folder / "chroma.log") as (url, server):
        phases["server start"] = round(time.perf_counter() - began, 2)
        if seeded is not None:
            layout = IndexLayout(index_dir, Settings(index_dir=index_dir).collection)
            ServerBackend(layout, url).publish(seeded["build"])
            key = build_key(Settings(index_dir=index_dir, chroma_url=url), articles)
            remember_build(index_dir, key, seeded)
        with timed(phases, "build"):
            built = build_index(index_dir, articles, texts, embedder, chroma_url=url)
        state = index_state(index_dir, url)
        if built.get("copied_from_local_build"):
            print(f"  index of {built['chunks']} chunks, copied from the local build", flush=True)
        else:
            reused = " (reused; built earlier)" if built["reused"] else ""
            print(
                f"  index of {built['chunks']} chunks, {built['build_s']:.0f} s{reused}", flush=True
            )
        with timed(phases, "readers beside the sync"):
            traffic = readers_beside_sync(
                args,
                index_dir,
                url,
                source,
                edit_target(articles),
                texts.vectors.directory,
                questions,
            )
        with timed(phases, "cold start and memory of the app"):
            app = measure_startup(args, index_dir, answers, chroma_url=url)
        server_memory = startup.memory(server.pid)
    errors = sum(r["errors"] for r in traffic["readers"]) + (1 if "error" in traffic["sync"] else 0)
    return {
        "size": size,
        "chunks": built["chunks"],
        "corpus": corpus_info,
        "build": built,
        "index_before_sync": state,
        **traffic,
        "errors": errors,
        "server_memory_mb": server_memory,
        "app_startup": app,
        "phases_s": phases,
    }


def server_corpus_folder(args: argparse.Namespace, size: int, folder: Path) -> Path:
    """Where the server run's corpus file is: the local run's of this size when the server's
    index is (or is to be) copied from the local build, whose articles' origins name that file;
    else the server run's own `folder`."""
    marker = folder / "corpus-folder"
    if marker.exists():
        return Path(marker.read_text(encoding="utf-8").strip())
    local: Path = args.cache / f"scale-{size}"
    if args.server_from_local and not (folder / "chroma").exists() and (local / "index").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(local), encoding="utf-8")
        return local
    return folder


def seed_server(local_index: Path, folder: Path, index_dir: Path) -> dict[str, Any] | None:
    """Make the server's data (`folder`/chroma, not there yet) from the local index's complete
    build of the same corpus, to spare the ingest through the server (hours at a million chunks
    on 2 cores): its Chroma folder copied, the collection renamed as a server build's, and its
    record, keyword index and texts file copied into `index_dir`. Its texts stay in that file
    (a build written through a server keeps them as documents): the readers and the writer here
    share this disk, as readers on other machines would not. None when there is nothing to copy."""
    collection = Settings(index_dir=index_dir).collection
    local = IndexLayout(local_index, collection)
    built_here = (local_index / BUILD_RECORD).exists()  # and from the corpus as it is now
    live = read_pointer(local) if built_here else None
    if (folder / "chroma").exists() or live is None:
        return None
    record = load_manifest(local.manifest_path(live))
    if record.layers:  # the base it reads is a complete build
        record = load_manifest(local.manifest_path(record.layers[0].build_id))
    base = record.build_id
    print(f"  copying the local build {base} to the server's data ...", flush=True)
    shutil.copytree(local.chroma_dir(base), folder / "chroma")
    rename_collection(folder / "chroma", collection, f"{collection}__{base}")
    target = IndexLayout(index_dir, collection)
    target.build_dir(base).mkdir(parents=True)
    shutil.copy2(local.manifest_path(base), target.manifest_path(base))
    shutil.copy2(local.texts_path(base), target.texts_path(base))
    shutil.copytree(local.keyword_dir(base), target.keyword_dir(base))
    return {
        "build": base,
        "articles": len(record.articles),
        "chunks": record.chunks,
        "build_s": None,
        "copied_from_local_build": True,
    }


def rename_collection(directory: Path, name: str, new_name: str) -> None:
    import chromadb  # the one place the bench touches Chroma's own API: a server's naming

    client = chromadb.PersistentClient(path=str(directory), settings=chroma_settings())
    try:
        client.get_collection(name, embedding_function=None).modify(name=new_name)
    finally:
        client.close()  # type: ignore[attr-defined]


def chroma_command() -> str:
    """The `chroma` executable beside this Python (the virtual environment's), else on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    return str(beside) if beside.exists() else shutil.which("chroma") or "chroma"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `chroma run` server keeping its data in `path`, until the block ends."""
    path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [chroma_command(), "run", "--path", str(path), "--host", "127.0.0.1"]
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, cwd=path
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, server, log)
        yield url, server
    finally:
        stop_process(server)


def wait_for_server(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"chroma run exited ({server.returncode}):\n{tail}")
        try:
            with opener.open(f"{url}/api/v2/heartbeat", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Chroma server at {url} did not answer within {SERVER_START_S:g} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_child(mode: str, options: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """This script as a `--child` process, its output to `log`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, *options]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def readers_beside_sync(
    args: argparse.Namespace,
    index_dir: Path,
    url: str,
    source: Path,
    target: tuple[str, int],
    vectors: Path,
    questions: Sequence[str],
) -> dict[str, Any]:
    """Two readers asking questions without pause, a writer syncing one article meanwhile."""
    with tempfile.TemporaryDirectory(prefix="citeqa-scale-") as tmp:
        work = Path(tmp)
        questions_file = work / "questions.json"
        questions_file.write_text(json.dumps(list(questions)), encoding="utf-8")
        stop = work / "stop"
        common = ["--index-dir", str(index_dir), "--chroma-url", url]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            readers = []
            for number in (1, 2):
                paths = {k: work / f"reader-{number}.{k}" for k in ("json", "status", "log")}
                options = [
                    *common,
                    *("--questions-file", str(questions_file), "--stop-file", str(stop)),
                    *("--status", str(paths["status"]), "--result", str(paths["json"])),
                ]
                processes.append(start_child("reader", options, paths["log"]))
                readers.append(paths)
            wait_until(
                lambda: all(p["status"].exists() for p in readers),
                processes,
                args.child_timeout,
                "the readers to open the index",
            )
            time.sleep(WARM_S)
            print("  readers ready; syncing one article beside them ...", flush=True)
            sync_result, sync_log = work / "sync.json", work / "sync.log"
            writer = start_child(
                "sync",
                [
                    *common,
                    *("--source", str(source), "--article", target[0], "--line", str(target[1])),
                    *("--vectors", str(vectors), "--result", str(sync_result)),
                ],
                sync_log,
            )
            processes.append(writer)
            try:
                writer.wait(timeout=args.child_timeout)
            except subprocess.TimeoutExpired:
                stop_process(writer)
            if writer.returncode == 0 and sync_result.is_file():
                sync: dict[str, Any] = json.loads(sync_result.read_text(encoding="utf-8"))
                new_build = sync["build_id"]
                followed = wait_until(
                    lambda: all(
                        read_status(p["status"]).get("build_id") == new_build for p in readers
                    ),
                    processes[:2],
                    FOLLOW_TIMEOUT_S,
                    "the readers to move to the new build",
                    fail=False,
                )
                sync["readers_followed_within_s"] = followed
            else:
                tail = sync_log.read_text(encoding="utf-8", errors="replace")[-3000:]
                sync = {"error": f"the sync failed (exit {writer.returncode}):\n{tail}"}
            time.sleep(AFTER_S)
            stop.touch()
            results = []
            for process, paths in zip(processes[:2], readers, strict=True):
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    stop_process(process)
                results.append(reader_summary(paths, process.returncode, sync))
        finally:
            for process in processes:
                stop_process(process)
    return {"readers": results, "sync": sync}


def wait_until(
    done: Callable[[], bool],
    processes: Sequence[subprocess.Popen[bytes]],
    timeout: float,
    what: str,
    fail: bool = True,
) -> float | None:
    """Seconds until `done()` is true; RuntimeError (or None, unless `fail`) if a process exits
    or `timeout` passes first."""
    began = time.monotonic()
    while not done():
        exited = [p for p in processes if p.poll() is not None]
        if exited or time.monotonic() - began > timeout:
            if not fail:
                return None
            problem = f"a process exited ({exited[0].returncode})" if exited else "timed out"
            raise RuntimeError(f"Waiting for {what}: {problem}")
        time.sleep(0.2)
    return round(time.monotonic() - began, 2)


def read_status(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found


def reader_summary(
    paths: dict[str, Path], returncode: int | None, sync: dict[str, Any]
) -> dict[str, Any]:
    """A reader's latencies (over all, and while the sync ran), errors and builds read."""
    if not paths["json"].is_file():
        tail = paths["log"].read_text(encoding="utf-8", errors="replace")[-3000:]
        message = f"the reader failed (exit {returncode}):\n{tail}"
        return {"questions": 0, "errors": 1, "error_messages": {message: 1}}
    result = json.loads(paths["json"].read_text(encoding="utf-8"))
    timed_at = result["latencies"]
    seconds = [s for _, s in timed_at]
    window = (sync.get("sync_began_at", 0.0), sync.get("ended_at", 0.0))
    during = [s for at, s in timed_at if window[0] <= at <= window[1]]
    messages = Counter(e["error"] for e in result["errors"])
    return {
        "questions": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000 if seconds else None,
        "p95_ms": percentile(seconds, 95) * 1000 if seconds else None,
        "max_ms": max(seconds) * 1000 if seconds else None,
        "during_sync": {
            "questions": len(during),
            "p95_ms": percentile(during, 95) * 1000 if during else None,
        },
        "errors": len(result["errors"]),
        "error_messages": dict(messages.most_common(10)),
        "builds_read": result["builds"],
        "read_the_sync_build": sync.get("build_id") in result["builds"],
        "memory_mb": result["memory"],
    }


def child_reader(args: argparse.Namespace) -> int:
    """A reader: the app's retriever on the server, asking questions until told to stop."""
    enforce_offline()
    questions: list[str] = json.loads(args.questions_file.read_text(encoding="utf-8"))
    errors: list[dict[str, Any]] = []
    latencies: list[tuple[float, float]] = []
    builds: list[str] = []
    retriever = None
    try:
        settings = Settings(
            index_dir=args.index_dir, chroma_url=args.chroma_url, retriever="hybrid"
        )
        retriever = build_retriever(settings)
        for question in questions[:WARMUP]:
            retriever.search(question)
        builds.append(retriever.store.build_id)
    except Exception as e:  # any exception counts, with its message
        errors.append({"at": time.time(), "error": f"{type(e).__name__}: {e}"})
        retriever = None
    write_status(args.status, builds, 0, errors)
    asked = 0
    noted = time.monotonic()
    while retriever is not None and not args.stop_file.exists():
        question = questions[asked % len(questions)]
        asked += 1
        at = time.time()
        started = time.perf_counter()
        try:
            retriever.search(question)
        except Exception as e:  # any exception counts, with its message
            errors.append({"at": at, "error": f"{type(e).__name__}: {e}"})
        else:
            latencies.append((at, time.perf_counter() - started))
        if retriever.store.build_id != builds[-1]:
            builds.append(retriever.store.build_id)
        if time.monotonic() - noted >= 0.5:
            write_status(args.status, builds, asked, errors)
            noted = time.monotonic()
    result = {
        "latencies": latencies,
        "errors": errors,
        "builds": builds,
        "memory": startup.memory(),
    }
    args.result.write_text(json.dumps(result), encoding="utf-8")
    return 0


def write_status(path: Path, builds: Sequence[str], asked: int, errors: Sequence[Any]) -> None:
    part = path.with_suffix(".part")
    status = {"build_id": builds[-1] if builds else None, "asked": asked, "errors": len(errors)}
    part.write_text(json.dumps(status), encoding="utf-8")
    os.replace(part, path)


def child_sync(args: argparse.Namespace) -> int:
    """The writer: the one-article sync, on the server."""
    enforce_offline()
    embedder = open_embedder()
    texts = CachedTexts(VectorCache(args.vectors, embedder))
    settings = Settings(index_dir=args.index_dir, chroma_url=args.chroma_url)
    result = sync_one_article(
        settings, args.source, (args.article, args.line), SyncEmbedder(embedder, texts)
    )
    args.result.write_text(json.dumps(result), encoding="utf-8")
    return 0


# ---- the machine, the targets, the tables ----


@contextlib.contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to `phases[name]`."""
    began = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - began, 2)


def cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    found = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(found, None)


def memory_gb() -> float | None:
    try:
        lines = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    total = next((line.split()[1] for line in lines if line.startswith("MemTotal:")), None)
    return None if total is None else round(int(total) * 1024 / 1e9, 1)


def check_targets(
    results: Sequence[dict[str, Any]], server: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each target at each size it applies to: what was measured, and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(name: str, size: int, measured: float | None, limit: float, at_most: bool) -> None:
        value = None if measured is None else float(measured)  # numpy numbers are not JSON
        met = None if value is None else value <= limit if at_most else value >= limit
        rows.append({"target": name, "size": size, "measured": value, "limit": limit, "met": met})

    for r in results:
        size = r["size"]
        if size >= SYNC_TARGET_SIZE:
            add("one-article sync s", size, r["sync"]["seconds"], TARGET_SYNC_S, True)
        if size < TARGET_SIZE:
            continue
        add("search p95 ms", size, r["search"]["p95_ms"], TARGET_P95_MS, True)
        add("HNSW recall@10", size, r["search"]["recall_at_10"], TARGET_RECALL, False)
        add("one-day filter p95 ms", size, r["day_filter"].get("p95_ms"), TARGET_P95_MS, True)
        peak = r["startup"]["peak_after_mb"]
        add("peak RSS after the answers MB", size, peak and peak["max"], TARGET_RSS_MB, True)
        ready = r["startup"]["answer_ready_s"]["median"]
        add("cold start (answer-ready, median) s", size, ready, TARGET_READY_S, True)
    if server is not None:
        add("server: errors of two readers and a writer", server["size"], server["errors"], 0, True)
    return rows


def print_tables(payload: dict[str, Any]) -> None:
    machine = payload["machine"]
    print(
        f"\n{machine['cpu_model']}, {machine['cpu_count']} CPUs, {machine['memory_gb']} GB; "
        f"load average before {payload['load_average']['before']}, "
        f"after {payload['load_average']['after']}; {payload['options']['queries']} questions"
    )
    print(
        "\n| chunks | build s | search p50 / p95 ms | recall@10 | one-day filter p95 ms "
        "(passages, outside the day) | answer-ready s (first / median) | RSS at answer-ready / "
        "after the answers / peak MB | one-article sync s (chunks embedded / reused) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in payload["results"]:
        search, start, sync, day = r["search"], r["startup"], r["sync"], r["day_filter"]
        built = f"{r['build']['build_s']:.0f}" + (" (reused)" if r["build"]["reused"] else "")
        filtered = (
            f"{day['p95_ms']:.1f} ({day['passages']}, {day['outside_the_day']})"
            if day["searches"]
            else "no dated chunks"
        )
        print(
            f"| {r['chunks']:,} | {built} | {search['p50_ms']:.1f} / {search['p95_ms']:.1f} | "
            f"{search['recall_at_10']:.4f} | {filtered} | "
            f"{start['answer_ready_s']['first']:.2f} / {start['answer_ready_s']['median']:.2f} | "
            f"{mb(start['rss_ready_mb'])} / {mb(start['rss_after_mb'])} / "
            f"{mb(start['peak_after_mb'], 'max')} | {sync['seconds']:.2f} "
            f"({sync['chunks_embedded']} / {sync['chunks_copied']}) |"
        )
    server = payload["server"]
    if server is not None:
        print(f"\nChroma server, {server['chunks']:,} chunks: two readers, one writer")
        print("\n| process | questions | p50 ms | p95 ms | p95 during the sync ms | errors |")
        print("|---|---|---|---|---|---|")
        for number, reader in enumerate(server["readers"], start=1):
            during = reader.get("during_sync", {})
            print(
                f"| reader {number} | {reader['questions']} | {ms(reader.get('p50_ms'))} | "
                f"{ms(reader.get('p95_ms'))} | {ms(during.get('p95_ms'))} "
                f"({during.get('questions', 0)} questions) | {reader['errors']} |"
            )
        sync = server["sync"]
        if "error" in sync:
            print(f"| writer (sync) | | | | | 1: {sync['error'].splitlines()[0]} |")
        else:
            print(
                f"| writer (one-article sync {sync['seconds']:.2f} s, {sync['chunks_embedded']} "
                f"embedded / {sync['chunks_copied']} reused) | | | | | 0 |"
            )
        app = server.get("app_startup")
        if app:
            ready = app["answer_ready_s"]["median"]
            print(
                f"  the app on the server's index: answer-ready {ready:.2f} s (median of "
                f"{app['starts']}), RSS at answer-ready / after the answers / peak "
                f"{mb(app['rss_ready_mb'])} / {mb(app['rss_after_mb'])} / "
                f"{mb(app['peak_after_mb'], 'max')} MB; the server's "
                f"{mb(server.get('server_memory_mb'), 'rss_mb')} MB"
            )
        for number, reader in enumerate(server["readers"], start=1):
            for message, count in reader.get("error_messages", {}).items():
                print(f"  reader {number}, {count}x: {message.splitlines()[0][:200]}")
    print("\nTargets:")
    for t in payload["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        measured = "-" if t["measured"] is None else f"{t['measured']:.4g}"
        sign = ">=" if t["target"] == "HNSW recall@10" else "<="
        print(f"  {t['target']} at {t['size']:,}: {measured} ({sign} {t['limit']:g}): {verdict}")
    print("\nPhases (wall seconds):")
    for name, seconds in payload["phases_s"].items():
        print(f"  {name}: {seconds:.0f}")
    for r in [*payload["results"], *([server] if server else [])]:
        label = f"server {r['size']:,}" if r is server else f"{r['size']:,}"
        print(f"  {label}: " + ", ".join(f"{k} {v:.0f}" for k, v in r["phases_s"].items()))
    print(f"  total: {payload['wall_s']:.0f}")


def mb(row: dict[str, float | None] | None, key: str = "median") -> str:
    value = None if row is None else row.get(key)
    return "-" if value is None else f"{value:.0f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())

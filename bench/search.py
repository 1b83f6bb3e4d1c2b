"""Benchmark: search at scale. Query latency (embedding + hybrid search + fetch, as the app runs
it) at p50/p95 over real dev questions, and the HNSW index's recall@10 against exact search, for
indexes of 10k and 100k chunks.

    python bench/search.py [--sizes 10000,100000] [--queries 300] [--cache bench/.cache]
        [--out bench/results/search.json]

The corpus is real: the SQuAD and RealTime QA articles with their distractors (`--eval-dir`),
chunked by the project's chunker. Their vectors are computed once and kept in `--cache` (about 15
minutes on 2 cores the first time). A size beyond the real chunks repeats articles under new ids
with each repeated chunk's vector moved by seeded random noise (cosine about 0.85 to the original),
so no two vectors are equal. Each index is built by the project's own build code (chunking,
Chroma writes, keyword index, checks) and kept in the cache for the start-up benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from index.backends import hnsw_configuration
from index.build import chunk_articles, index_articles
from index.chunking import searchable_text
from index.embeddings import Embedder, open_embedder
from index.fingerprint import fingerprint_for, settings_key
from index.layout import IndexLayout
from index.manifest import Manifest, load_manifest
from index.reader import Store
from index.sources import load_sources
from index.types import Article
from qa import Settings, enforce_offline
from qa.chain import build_retriever
from qa.eval.data import load_questions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval"
SETS = (  # (folder, file prefix, distractor articles used)
    ("squad_v1.1", "squad_v1.1", None),
    ("realtimeqa_2022", "realtimeqa_2022", 800),
)
NOISE = 0.0316  # per dimension: a 384-dimension unit vector keeps cosine ~0.85 to its original
WARMUP = 10  # questions asked before timing starts
RECALL_K = 10
BUILD_RECORD = "bench.json"  # beside a benchmark's index: what it was built from (`build_key`)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="index sizes, in chunks")
    parser.add_argument("--queries", type=int, default=300, help="dev questions timed per size")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    enforce_offline()
    embedder = open_embedder()
    articles = load_real_articles(args.eval_dir, args.cache)
    settings = Settings(index_dir=args.cache / "unused", retriever="hybrid")
    fingerprint = fingerprint_for(settings, embedder)
    by_article, chunks = chunk_articles(settings, embedder, fingerprint, articles)
    vectors = VectorCache(args.cache / "vectors" / embedder.name, embedder)
    vectors.fill([searchable_text(c, settings.embed_titles) for c in chunks])
    questions = load_bench_questions(args.eval_dir, args.queries)
    results: list[dict[str, Any]] = []
    for size in sizes:
        chosen = corpus_of(articles, {a: len(c) for a, c in by_article.items()}, size)
        index_dir = args.cache / f"index-{size}"
        built = ensure_index(index_dir, chosen, vectors, embedder)
        print(f"{size}: index of {built['chunks']} chunks at {index_dir}", flush=True)
        result = {"size": size, **built, **measure(index_dir, questions)}
        results.append(result)
        print_row(result)
    payload = {"machine": machine(), "queries": len(questions), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print_table(payload)
    print(f"\nWrote {args.out}")
    return 0


def load_real_articles(eval_dir: Path, cache: Path) -> list[Article]:
    """The evaluation sets' articles and distractors, read by the project's loader."""
    sources: list[Path] = []
    for folder, prefix, limit in SETS:
        sources.append(eval_dir / folder / "articles.jsonl")
        distractors = eval_dir / folder / "extras" / f"{prefix}.articles_distractors.jsonl"
        if limit is not None:  # the first `limit` lines, as the evaluation harness takes them
            cache.mkdir(parents=True, exist_ok=True)
            kept = cache / f"{prefix}.distractors-{limit}.jsonl"
            with distractors.open(encoding="utf-8") as lines:
                kept.write_text("".join(line for _, line in zip(range(limit), lines, strict=False)))
            distractors = kept
        sources.append(distractors)
    missing = [s for s in sources if not s.is_file()]
    if missing:
        raise SystemExit(f"missing evaluation data: {missing[0]} (pass --eval-dir)")
    return list(load_sources(sources).articles)


def load_bench_questions(eval_dir: Path, count: int) -> list[str]:
    """`count` dev questions: every RealTime QA one, the rest a seeded SQuAD sample."""
    rtqa = [
        q.question for q in load_questions(eval_dir / "realtimeqa_2022" / "questions.dev.jsonl")
    ]
    squad = [q.question for q in load_questions(eval_dir / "squad_v1.1" / "questions.dev.jsonl")]
    random.Random(7).shuffle(squad)
    return (rtqa + squad)[:count] if count > len(rtqa) else rtqa[:count]


def corpus_of(
    articles: Sequence[Article], chunk_counts: dict[str, int], size: int
) -> list[Article]:
    """Articles in order until they hold `size` chunks, repeated under new ids when the real
    ones run out (copy `n` of an article is `<id>~n`)."""
    chosen: list[Article] = []
    total = 0
    copy = 0
    while total < size:
        for article in articles:
            chosen.append(article if copy == 0 else replace(article, id=f"{article.id}~{copy}"))
            total += chunk_counts.get(article.id, 0)
            if total >= size:
                break
        copy += 1
    return chosen


class VectorCache:
    """The packaged model's vectors of chunk texts, computed once and kept on disk."""

    def __init__(self, directory: Path, embedder: Embedder) -> None:
        self.directory = directory
        self.embedder = embedder
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((0, embedder.dimension), dtype=np.float32)
        if (directory / "texts.json").exists():
            texts = json.loads((directory / "texts.json").read_text(encoding="utf-8"))
            self.matrix = np.load(directory / "vectors.npy")
            self.rows = {t: i for i, t in enumerate(texts)}

    def fill(self, texts: Sequence[str], step: int = 1024) -> None:
        """Embed the texts not yet cached, saving after each step."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if not missing:
            return
        for begin in tqdm(range(0, len(missing), step), desc="Embedding the corpus once"):
            part = missing[begin : begin + step]
            self.matrix = np.vstack([self.matrix, self.embedder.encode(part)])
            self.rows.update((t, len(self.rows)) for t in part)
            self.save()

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        np.save(self.directory / "vectors.npy", self.matrix)
        (self.directory / "texts.json").write_text(json.dumps(list(self.rows)), encoding="utf-8")

    def vector(self, text: str) -> np.ndarray:
        row: np.ndarray = self.matrix[self.rows[text]]
        return row


class CachedEmbedder(Embedder):
    """The real model for queries and token counts; chunk vectors from the cache. A text asked
    for again (a repeated article's chunk) gets its vector moved by seeded noise, one draw per
    repeat, so that every stored vector is distinct."""

    def __init__(self, embedder: Embedder, vectors: VectorCache) -> None:
        super().__init__(embedder.engine, embedder.name, embedder.count_tokens, embedder.batch_size)
        self._vectors = vectors
        self._seen: dict[str, int] = {}
        self._noise = np.random.default_rng(7)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for text in texts:
            vector = self._vectors.vector(text)
            repeat = self._seen.get(text, 0)
            self._seen[text] = repeat + 1
            if repeat:
                moved = vector + self._noise.normal(0.0, NOISE, vector.shape).astype(np.float32)
                vector = moved / np.linalg.norm(moved)
            out.append([float(x) for x in vector])
        return out


def ensure_index(
    index_dir: Path,
    articles: Sequence[Article],
    vectors: VectorCache,
    embedder: Embedder,
    *,
    chroma_url: str | None = None,
    chunk_embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Build the index of `articles` at `index_dir` (its vectors on the Chroma server at
    `chroma_url`, if given) unless one of them, made with the same settings and HNSW parameters,
    is there. Chunk vectors come from `chunk_embedder`, by default a `CachedEmbedder` of
    `vectors`."""
    settings = Settings(index_dir=index_dir)
    if chroma_url is not None:
        settings = Settings(index_dir=index_dir, chroma_url=chroma_url)
    record = index_dir / BUILD_RECORD
    key = build_key(settings, articles)
    if record.exists():
        kept = json.loads(record.read_text(encoding="utf-8"))
        if kept.get("build_key") == key:
            return dict(kept["built"])
    started = time.perf_counter()
    documents = chunk_embedder or CachedEmbedder(embedder, vectors)
    store, report = index_articles(settings, documents, articles)
    store.close()
    built = {
        "articles": report.articles,
        "chunks": report.chunks_total,
        "build_s": time.perf_counter() - started,
    }
    remember_build(index_dir, key, built)
    return built


def build_key(settings: Settings, articles: Sequence[Article]) -> str:
    """What an index built by `ensure_index` is made of: settings, HNSW parameters, article ids."""
    wanted = [
        settings_key(settings),
        json.dumps(hnsw_configuration(), sort_keys=True),
        *sorted(a.id for a in articles),
    ]
    return hash_ids(wanted)


def remember_build(index_dir: Path, key: str, built: dict[str, Any]) -> None:
    """Note beside the index what it was built from, for `ensure_index` to reuse it."""
    record = index_dir / BUILD_RECORD
    record.write_text(json.dumps({"build_key": key, "built": built}), encoding="utf-8")


def hash_ids(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def measure(index_dir: Path, questions: Sequence[str]) -> dict[str, Any]:
    """Latency of the app's hybrid search per question, and HNSW recall@10 against exact search
    over every stored vector."""
    settings = Settings(index_dir=index_dir, retriever="hybrid")
    retriever = build_retriever(settings)
    for question in questions[:WARMUP]:
        retriever.search(question)
    latencies: list[float] = []
    embed: list[float] = []
    for question in questions:
        started = time.perf_counter()
        timings = retriever.search(question).timings
        latencies.append(time.perf_counter() - started)
        embed.append(timings["embed"])
    query_vectors = retriever.embedder.encode(list(questions))
    store = retriever.store
    layout = IndexLayout(index_dir, settings.collection)
    manifest = load_manifest(layout.manifest_path(store.build_id))
    matrix = every_vector(store, layout, manifest, query_vectors.shape[1])
    recalls: list[float] = []
    for vector in query_vectors:
        exact = np.partition(matrix @ vector, -RECALL_K)[-RECALL_K]  # the 10th best similarity
        found = store.query([float(x) for x in vector], RECALL_K)
        # A found chunk counts if it is as close as the 10th exact neighbour (ties count).
        recalls.append(sum(f.score >= exact - 1e-5 for f in found) / RECALL_K)
    store.close()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "mean_ms": statistics.mean(latencies) * 1000,
        "embed_p50_ms": percentile(embed, 50) * 1000,
        "recall_at_10": statistics.mean(recalls),
    }


def every_vector(store: Store, layout: IndexLayout, manifest: Manifest, dimensions: int) -> Any:
    """Every stored vector as one array (the row order does not matter to exact search): a build
    of one part has them in its vectors file, which a test checks against Chroma's; otherwise
    they are read from Chroma a page at a time (a million of them as lists of Python floats
    would take over 10 GB; exporting them took most of a quarter of an hour)."""
    path = layout.vectors_path(manifest.build_id)
    if not manifest.layers and path.exists():
        return np.load(path)
    ids = [c for entry in manifest.articles.values() for c in entry.chunk_ids]
    matrix = np.empty((len(ids), dimensions), dtype=np.float32)
    filled = 0
    for page in store.export(ids):
        matrix[filled : filled + len(page)] = np.asarray([s.vector for s in page], np.float32)
        filled += len(page)
    return matrix


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def machine() -> str:
    return (
        f"{platform.machine()}, {platform.system()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def print_row(r: dict[str, Any]) -> None:
    print(
        f"{r['chunks']} chunks: p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
        f"recall@10 {r['recall_at_10']:.4f}",
        flush=True,
    )


def print_table(payload: dict[str, Any]) -> None:
    print(f"\n{payload['queries']} questions per index ({payload['machine']})\n")
    print(
        "| chunks | articles | build s | query p50 ms | query p95 ms | of which embedding "
        "p50 ms | HNSW recall@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in payload["results"]:
        print(
            f"| {r['chunks']} | {r['articles']} | {r['build_s']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['embed_p50_ms']:.1f} | {r['recall_at_10']:.4f} |"
        )
    print("\nTargets at 100k chunks: p95 <= 50 ms, recall@10 >= 0.98")


if __name__ == "__main__":
    raise SystemExit(main())

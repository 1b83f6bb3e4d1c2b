"""Benchmark: end-to-end ingest against its ceiling, the embedding model's raw encode rate.

    python bench/ingest.py [--source ARTICLES.jsonl] [--articles 60] [--rounds 2]
        [--out bench/results/ingest.json]

The ceiling is the model encoding exactly the chunks the pipeline produces, all in one call at the
pipeline's batch size. The pipeline is `python -m index rebuild`'s code: read, chunk, embed, write
to Chroma and the keyword index, check and publish, into a fresh index each round. The two take
turns round by round, so a busy machine slows both alike; the ratio of their rates (chunks per
second) is the result (target >= 0.9). The embedding model is loaded once, before either.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from index.build import EMBEDDING, chunk_articles, rebuild_index
from index.chunking import searchable_text
from index.config import IndexSettings
from index.embeddings import open_embedder
from index.fingerprint import fingerprint_for
from index.offline import enforce_offline
from index.sources import load_sources

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = (
    ROOT.parent
    / "shared"
    / "eval"
    / "squad_v1.1"
    / "extras"
    / "squad_v1.1.articles_distractors.jsonl"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="a .jsonl of articles")
    parser.add_argument("--articles", type=int, default=60, help="first N articles of --source")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"no articles file at {args.source}; pass --source")
    enforce_offline()
    started = time.perf_counter()
    embedder = open_embedder()
    model_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "articles.jsonl"
        with args.source.open(encoding="utf-8") as lines:
            source.write_text("".join(itertools.islice(lines, args.articles)))
        settings = IndexSettings(index_dir=Path(tmp) / "index")
        articles = load_sources([source]).articles
        fingerprint = fingerprint_for(settings, embedder)
        _, chunks = chunk_articles(settings, embedder, fingerprint, articles)
        texts = [searchable_text(c, settings.embed_titles) for c in chunks]
        rounds: list[dict[str, Any]] = []
        for number in range(1, args.rounds + 1):
            began = time.perf_counter()
            embedder.encode(texts)
            ceiling = time.perf_counter() - began
            stages = PipelineStages()
            began = time.perf_counter()
            store, report = rebuild_index(settings, embedder, source, stages)
            pipeline = time.perf_counter() - began
            store.close()
            if report.chunks_total != len(chunks):
                raise SystemExit(f"the pipeline wrote {report.chunks_total} of {len(chunks)}")
            rounds.append(
                {
                    "ceiling_s": ceiling,
                    "pipeline_s": pipeline,
                    "ratio": ceiling / pipeline,
                    **stages.seconds(began, began + pipeline),
                }
            )
            print(f"round {number}: ceiling {ceiling:.1f} s, pipeline {pipeline:.1f} s", flush=True)
    payload = {
        "machine": machine(),
        "model_load_s": model_seconds,
        "articles": len(articles),
        "chunks": len(chunks),
        "batch_size": embedder.batch_size,
        "rounds": rounds,
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print_table(payload)
    print(f"\nWrote {args.out}")
    return 0


class PipelineStages:
    """When the pipeline started and finished embedding, from its progress callback."""

    def __init__(self) -> None:
        self.embed_start: float | None = None
        self.embed_end: float | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != EMBEDDING:
            return
        now = time.perf_counter()
        if self.embed_start is None:
            self.embed_start = now
        if done == total:
            self.embed_end = now

    def seconds(self, began: float, ended: float) -> dict[str, float]:
        """Seconds spent reading and chunking, embedding and writing, and finishing."""
        start = self.embed_start or began
        end = self.embed_end or ended
        return {
            "read_chunk_s": start - began,
            "embed_write_s": end - start,
            "finish_s": ended - end,
        }


def machine() -> str:
    return (
        f"{platform.machine()}, {platform.system()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def print_table(payload: dict[str, Any]) -> None:
    chunks = payload["chunks"]
    print(
        f"\n{payload['articles']} articles, {chunks} chunks, batch {payload['batch_size']}, "
        f"model load {payload['model_load_s']:.1f} s ({payload['machine']})\n"
    )
    print(
        "| round | ceiling (chunks/s) | pipeline (chunks/s) | ratio | read+chunk s "
        "| embed+write s | finish s |"
    )
    print("|---|---|---|---|---|---|---|")
    for number, r in enumerate(payload["rounds"], start=1):
        print(
            f"| {number} | {chunks / r['ceiling_s']:.1f} | {chunks / r['pipeline_s']:.1f} | "
            f"{r['ratio']:.3f} | {r['read_chunk_s']:.1f} | {r['embed_write_s']:.1f} | "
            f"{r['finish_s']:.1f} |"
        )
    print(f"\nPipeline / ceiling, median: {payload['ratio_median']:.3f} (target >= 0.90)")


if __name__ == "__main__":
    raise SystemExit(main())

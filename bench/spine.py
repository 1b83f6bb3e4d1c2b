"""Benchmark of the spine on this machine: index build time for `articles/`, model load time, and
time to first token / total answer time of the chosen model on a few sample questions.

    python bench/spine.py [--model qwen2.5-coder-1.5b] [--out bench/results/spine.json]

Prints a table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from index.build import rebuild_index
from index.embeddings import open_embedder
from qa import Settings, build_chain, enforce_offline

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = (
    "Who is Wang Lei?",
    "Who won Super Bowl 50?",
    "What caused the 1973 oil crisis?",
    "When did the Black Death reach Europe?",
    "What is the best recipe for banana bread?",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "spine.json")
    args = parser.parse_args(argv)
    enforce_offline()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp), llm_model=args.model)
        started = time.perf_counter()
        embedder = open_embedder()
        embedder_seconds = time.perf_counter() - started
        _, report = rebuild_index(settings, embedder, ROOT / "articles")
        started = time.perf_counter()
        chain = build_chain(settings)
        chain_seconds = time.perf_counter() - started
        rows: list[dict[str, Any]] = []
        for question in QUESTIONS:
            answer = chain.invoke(question)
            rows.append(
                {
                    "question": question,
                    "covered": answer.covered,
                    "citations": [c.marker for c in answer.citations],
                    "seconds_to_first_token": answer.seconds_to_first_token,
                    "seconds_total": round(answer.seconds_total, 2),
                    "answer": answer.text,
                }
            )
    answered = [r for r in rows if r["covered"]]
    result = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "model": args.model,
        "embedder_load_seconds": round(embedder_seconds, 2),
        "index": {
            "articles": report.articles_read,
            "chunks": report.chunks_written,
            "seconds": round(report.seconds, 2),
            "chunks_per_second": round(report.chunks_written / report.seconds, 1),
        },
        "chain_build_seconds": round(chain_seconds, 2),
        "median_seconds_to_first_token": statistics.median(
            r["seconds_to_first_token"] for r in answered
        )
        if answered
        else None,
        "median_seconds_total": statistics.median(r["seconds_total"] for r in answered)
        if answered
        else None,
        "questions": rows,
    }
    print(
        f"index: {report.articles_read} articles, {report.chunks_written} chunks "
        f"in {report.seconds:.1f} s; chain build {chain_seconds:.1f} s ({args.model})"
    )
    print(f"{'question':45} {'covered':>7} {'cites':>6} {'ttft s':>7} {'total s':>8}")
    for r in rows:
        ttft = r["seconds_to_first_token"]
        print(
            f"{r['question'][:45]:45} {r['covered']!s:>7} {len(r['citations']):>6} "
            f"{(f'{ttft:.1f}' if ttft is not None else '-'):>7} {r['seconds_total']:>8.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

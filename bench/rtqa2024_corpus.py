"""The RealTime QA 2024 corpus as docs/evaluation.md indexes it: every page published from 2024 on
as the gold articles, the older pages in a seeded order as distractors (the first
`--distractors-limit` of them are indexed).

    python bench/rtqa2024_corpus.py [--eval-dir ../shared/eval/realtimeqa_2024] [--seed 0]
        [--out .citeqa-eval/rtqa2024]

then, for example, the 100 strict questions of seed 24 as of their dates:

    python -m qa.eval --articles OUT/articles.jsonl --distractors OUT/older.jsonl \\
        --distractors-limit 1200 --questions ../shared/eval/realtimeqa_2024/questions.dev.jsonl \\
        --subset answerable_strict --sample 100 --seed 24 --answers --report DIR
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIRST_DAY = "2024-01-01"


def split_pages(pages: Sequence[dict[str, Any]], seed: int) -> tuple[list[Any], list[Any]]:
    """The pages published from `FIRST_DAY` on, in file order, and the older (or undated) ones
    in the order `random.Random(seed)` shuffles them into."""
    recent = [p for p in pages if str(p.get("published") or "") >= FIRST_DAY]
    older = [p for p in pages if str(p.get("published") or "") < FIRST_DAY]
    random.Random(seed).shuffle(older)
    return recent, older


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=Path("../shared/eval/realtimeqa_2024"))
    parser.add_argument("--seed", type=int, default=0, help="order of the older pages")
    parser.add_argument("--out", type=Path, default=Path(".citeqa-eval/rtqa2024"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = args.eval_dir / "articles.jsonl.gz"
    try:
        with gzip.open(source, "rt", encoding="utf-8") as lines:
            pages = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as e:
        print(f"Error: cannot read {source}: {e}", file=sys.stderr)
        return 1
    recent, older = split_pages(pages, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "articles.jsonl", recent)
    write_jsonl(args.out / "older.jsonl", older)
    print(f"{len(recent)} pages of 2024 and {len(older)} older ones written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

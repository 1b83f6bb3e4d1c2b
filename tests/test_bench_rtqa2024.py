"""bench/rtqa2024_corpus.py: the 2024 pages as articles, the older ones as seeded distractors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.support.bench import load_bench


def test_the_2024_pages_are_articles_and_the_older_ones_distractors_in_a_seeded_order(
    tmp_path: Path,
) -> None:
    bench = load_bench("rtqa2024_corpus")
    pages: list[dict[str, str | None]] = [
        {"id": f"p{n}", "title": "t", "text": "x", "published": f"{2014 + n}-06-01"}
        for n in range(12)
    ]
    pages.append({"id": "undated", "title": "t", "text": "x", "published": None})
    with gzip.open(tmp_path / "articles.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(page) + "\n" for page in pages)

    written: list[list[list[str]]] = []
    for seed in (0, 0, 1):
        folder = tmp_path / f"out-{len(written)}"
        code = bench.main(["--eval-dir", str(tmp_path), "--seed", str(seed), "--out", str(folder)])
        assert code == 0
        read = [
            [json.loads(line)["id"] for line in (folder / name).read_text().splitlines()]
            for name in ("articles.jsonl", "older.jsonl")
        ]
        written.append(read)
    recent, older = written[0]
    assert recent == ["p10", "p11"]  # 2024 and 2025
    assert sorted(older) == sorted([f"p{n}" for n in range(10)] + ["undated"])
    assert written[1] == written[0]  # the same seed, the same distractors
    assert written[2][1] != older


def test_a_missing_data_folder_is_an_error_not_a_crash(tmp_path: Path) -> None:
    bench = load_bench("rtqa2024_corpus")
    assert bench.main(["--eval-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1

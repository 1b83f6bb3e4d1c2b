"""bench/startup.py's parent-side helpers (no subprocesses, no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.bench import load_bench


def test_questions_fall_back_to_builtin_without_eval_dir(tmp_path: Path) -> None:
    bench = load_bench("startup")
    questions, source = bench.load_questions(tmp_path / "missing", 20)
    assert source == "built-in"
    assert questions == list(bench.BUILTIN_QUESTIONS)


def test_questions_spread_over_the_eval_file(tmp_path: Path) -> None:
    bench = load_bench("startup")
    lines = [json.dumps({"id": str(i), "question": f"q{i}?"}) for i in range(10)]
    (tmp_path / bench.QUESTIONS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    questions, source = bench.load_questions(tmp_path, 3)
    assert source == bench.QUESTIONS_FILE
    assert questions == ["q0?", "q3?", "q6?"]


def test_timeline_and_summary() -> None:
    bench = load_bench("startup")
    run = {
        "spawned_at": 100.0,
        "started_at": 100.5,
        "ready_at": 104.0,
        "ui_ready_at": 106.0,
        "steps": {"imports": 1.0, "gradio import": 1.5},
        "answers": {"count": 2, "median_s": 0.25},
        "memory": {"ready": {"rss_mb": 600.0, "peak_mb": 610.0}, "ui": None, "answers": None},
    }
    rows = bench.timeline(run)
    assert list(rows) == [
        "interpreter start",
        "imports",
        "= answer-ready (wall)",
        "gradio import",
        "= app ready, UI built (wall)",
        "answer, median of 2",
    ]
    assert rows["= answer-ready (wall)"] == 4.0
    summary = bench.summarise([rows, {**rows, "imports": 3.0}, {**rows, "imports": 2.0}])
    assert summary["imports"] == {"first": 1.0, "median": 2.0, "max": 3.0}
    assert bench.memory_rows(run) == {
        "RSS at answer-ready": 600.0,
        "peak RSS at answer-ready": 610.0,
    }


def test_memory_reads_this_process() -> None:
    found = load_bench("startup").memory()
    assert set(found) == {"rss_mb", "peak_mb"}

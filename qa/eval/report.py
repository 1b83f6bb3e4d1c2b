"""The evaluation report: a table for the terminal, `report.json`, and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qa.eval.metrics import mean, recall_at_k
from qa.eval.runner import EvalRun

TABLE_COLUMNS = (
    ("recall@1", "R@1"),
    ("recall@5", "R@5"),
    ("recall@10", "R@10"),
    ("mrr@10", "MRR@10"),
    ("passage_hit@5", "hit@5"),
    ("gate_abstention", "gate abst."),
    ("gate_false_abstention", "gate false"),
)


def recall_curve(run: EvalRun, max_k: int = 10) -> list[float]:
    """Article recall@k for k = 1..max_k over the answerable questions."""
    answerable = [r for r in run.results if not r.hidden]
    curve = []
    for k in range(1, max_k + 1):
        values = [
            recall_at_k([h.chunk.article_id for h in r.retrieved], r.question.article_ids, k)
            for r in answerable
        ]
        curve.append(mean(values) or 0.0)
    return curve


def format_number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(per_retriever: Mapping[str, Mapping[str, Any]]) -> str:
    """Retrieval metrics and latency (embed + search, unfiltered), a row per retriever."""
    header = ["retriever", *(label for _, label in TABLE_COLUMNS), "p50 ms", "p95 ms"]
    rows = [header]
    for name, metrics in per_retriever.items():
        total = metrics["latency"]["retrieval"]
        rows.append(
            [
                name,
                *(format_number(metrics["retrieval"].get(key)) for key, _ in TABLE_COLUMNS),
                f"{total['p50_ms']:.1f}",
                f"{total['p95_ms']:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def format_answers(answers: Mapping[str, Any]) -> str:
    """Answer metrics, one per line."""
    return "\n".join(f"{key:>24}: {format_number(value)}" for key, value in answers.items())


def write_report(report: Mapping[str, Any], runs: Sequence[EvalRun], directory: Path) -> list[Path]:
    """Write `report.json` and the plots into `directory`; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.json"]
    written[0].write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    written.extend(write_plots(runs, directory))
    return written


def write_plots(runs: Sequence[EvalRun], directory: Path) -> list[Path]:
    """`recall_at_k.png` (a curve per retriever) and `latency.png` (search latency histogram)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall_path = directory / "recall_at_k.png"
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        curve = recall_curve(run)
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=run.retriever)
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("article recall@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(recall_path, dpi=100)
    plt.close(fig)

    latency_path = directory / "latency.png"
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        values = [
            (r.timings.get("embed", 0.0) + r.timings.get("search", 0.0)) * 1000 for r in run.results
        ]
        ax.hist(values, bins=30, alpha=0.5, label=run.retriever)
    ax.set_xlabel("embed + search, ms per question")
    ax.set_ylabel("questions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(latency_path, dpi=100)
    plt.close(fig)
    return [recall_path, latency_path]

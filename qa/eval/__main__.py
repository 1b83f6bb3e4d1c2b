"""`python -m qa.eval`: measure retrieval (and answers) on a question set with the real pipeline.

python -m qa.eval --articles A.jsonl --questions Q.jsonl [--distractors D.jsonl]
    [--limit N] [--retriever dense,bm25,hybrid] [--answers | --no-answers]
    [--unanswerable 0.2] [--report DIR] [--conversations C.jsonl]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from index.cli import run_command
from index.embeddings import open_embedder_for
from index.progress import progress_bar
from qa.chain import build_chain, build_retriever
from qa.config import RETRIEVER_MODES, RetrieverMode, Settings
from qa.eval.conversations import format_follow_up, load_conversations, measure_rewrites
from qa.eval.data import choose_subset, load_questions
from qa.eval.report import format_answers, format_table, write_report
from qa.eval.runner import (
    CorpusSpec,
    EvalRun,
    answer_metrics,
    answer_rows,
    choose_hidden,
    gate_metrics,
    latency_metrics,
    load_corpus,
    open_metrics,
    prepare_index,
    retrieval_metrics,
    run_questions,
    time_metrics,
)


def parse_retrievers(text: str) -> list[RetrieverMode]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in RETRIEVER_MODES:
            raise argparse.ArgumentTypeError(
                f"unknown retriever {mode!r}; choose from {', '.join(RETRIEVER_MODES)}"
            )
    return modes  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qa.eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=Path, required=True, help="gold articles (.jsonl)")
    parser.add_argument("--questions", type=Path, required=True, help="questions (.jsonl)")
    parser.add_argument("--distractors", type=Path, help="extra articles no question is about")
    parser.add_argument("--distractors-limit", type=int, help="index only the first N distractors")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument(
        "--sample", type=int, help="ask a seeded random sample of N questions (after --limit)"
    )
    parser.add_argument(
        "--retriever",
        type=parse_retrievers,
        default=None,
        help="comma-separated: dense, bm25, hybrid (default: CITEQA_RETRIEVER); answers use the "
        "first",
    )
    parser.add_argument(
        "--answers",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also generate answers with the language model (slow on a CPU)",
    )
    parser.add_argument(
        "--unanswerable",
        type=float,
        default=0.0,
        help="share of questions whose gold articles are hidden (they should get 'not covered')",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the unanswerable sample")
    parser.add_argument(
        "--subset",
        metavar="FIELD[=VALUE]",
        help="ask only the questions whose record has FIELD true (or equal to VALUE), e.g. "
        "answerable_strict, relative_time, corpus=sample; before --sample",
    )
    parser.add_argument(
        "--as-of-dates",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask a question that has a question_date (or as_of) as of that date; "
        "--no-as-of-dates asks everything as of today",
    )
    parser.add_argument("--report", type=Path, help="directory for report.json and the plots")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".citeqa-eval"),
        help="where evaluation indexes are kept, keyed by content (default .citeqa-eval)",
    )
    parser.add_argument(
        "--conversations",
        type=Path,
        help="multi-turn conversations (.jsonl): recall@5 of follow-up turns asked raw, "
        "rewritten (by rules; with --answers also by the model) and standalone",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv, evaluate)


def evaluate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    modes: list[RetrieverMode] = args.retriever or [settings.retriever]
    started = time.perf_counter()
    embedder = open_embedder_for(settings)
    spec = CorpusSpec(args.articles, args.distractors, args.distractors_limit)
    articles = load_corpus(spec)
    questions = choose_subset(load_questions(args.questions, args.limit), args.subset)
    if args.sample is not None and args.sample < len(questions):
        questions = random.Random(args.seed).sample(questions, args.sample)
    conversations = load_conversations(args.conversations) if args.conversations else None
    with progress_bar("Indexing", unit="chunk", quiet=args.quiet) as progress:
        settings = prepare_index(articles, settings, embedder, args.cache_dir, progress)
    index_seconds = time.perf_counter() - started
    # Open the keyword index too, whatever retriever comes first, so all modes share one load.
    base = build_retriever(settings.model_copy(update={"retriever": "hybrid"}))
    hidden = choose_hidden(questions, args.unanswerable, args.seed)
    chain = None
    if args.answers:
        chain = build_chain(
            settings.model_copy(update={"retriever": modes[0]}),
            base.model_copy(update={"mode": modes[0]}),
        )
    runs: list[EvalRun] = []
    per_retriever: dict[str, dict[str, Any]] = {}
    answers: dict[str, Any] | None = None
    for position, mode in enumerate(modes):
        retriever = base.model_copy(update={"mode": mode})
        with progress_bar(f"Questions ({mode})", unit="question", quiet=args.quiet) as progress:
            run = run_questions(
                retriever,
                questions,
                hidden,
                settings.top_k,
                chain if position == 0 else None,
                progress,
                args.as_of_dates,
            )
        runs.append(run)
        per_retriever[mode] = {
            "retrieval": {
                **retrieval_metrics(run.results),
                **gate_metrics(run.results, settings.min_relevance),
            },
            "latency": latency_metrics(run.results),
        }
        if position == 0 and chain is not None:
            answers = {
                **answer_metrics(run.results),
                **time_metrics(run.results),
                **open_metrics(run.results),
            }
    follow_ups: dict[str, Any] | None = None
    if conversations is not None:
        follow_ups = {
            "file": str(args.conversations),
            "retriever": modes[0],
            "rewrites": measure_rewrites(
                base.model_copy(update={"mode": modes[0]}),
                conversations,
                chain.llm if chain is not None else None,
            ),
        }
    report = build_report(
        args, settings, articles, questions, hidden, index_seconds, chain is not None
    )
    report.update(
        retrievers=per_retriever,
        answers=answers,
        answer_rows=answer_rows(runs[0].results) if chain is not None else None,
        conversations=follow_ups,
    )
    print(
        f"{len(questions)} questions ({len(hidden)} with their articles hidden), "
        f"{len(articles)} articles indexed"
    )
    print_summary(per_retriever, answers, follow_ups, modes[0], settings.llm_model)
    if args.report is not None:
        for path in write_report(report, runs, args.report):
            print(f"wrote {path}")
    return 0


def build_report(
    args: argparse.Namespace,
    settings: Settings,
    articles: Sequence[object],
    questions: Sequence[object],
    hidden: Collection[object],
    index_seconds: float,
    answered: bool,
) -> dict[str, Any]:
    """The report's description of the run: its data, index and settings."""
    return {
        "articles": str(args.articles),
        "questions": str(args.questions),
        "distractors": str(args.distractors) if args.distractors else None,
        "indexed_articles": len(articles),
        "question_count": len(questions),
        "unanswerable_count": len(hidden),
        "subset": args.subset,
        "as_of_dates": args.as_of_dates,
        "index_dir": str(settings.index_dir),
        "index_seconds": round(index_seconds, 1),
        "settings": {
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap_tokens": settings.chunk_overlap_tokens,
            "top_k": settings.top_k,
            "min_relevance": settings.min_relevance,
            "min_answer_relevance": settings.min_answer_relevance,
            "min_support": settings.min_support,
            "prompt_passage_tokens": settings.prompt_passage_tokens,
            "llm_backend": settings.llm_backend,
            "llm_model": settings.llm_model if answered else None,
        },
    }


def print_summary(
    per_retriever: dict[str, dict[str, Any]],
    answers: dict[str, Any] | None,
    follow_ups: dict[str, Any] | None,
    mode: str,
    model: str,
) -> None:
    """The tables: retrieval by retriever, then answers and follow-ups when measured."""
    print(format_table(per_retriever))
    if answers is not None:
        print(f"\nAnswers ({mode} retrieval, {model}):")
        print(format_answers(answers))
        latency = per_retriever[mode]["latency"]
        print(f"{'first token s':>24}: {latency['first_token_s']}")
        print(f"{'prompt tokens':>24}: {latency['prompt_tokens']}")
    if follow_ups is not None:
        print(f"\nFollow-up turns ({mode} retrieval), article recall@5:")
        print(format_follow_up(follow_ups["rewrites"]))


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: citeqa's answer chain against a naive LangChain "stuff the top 4 chunks" chain on
the same model, index and questions: time to first token, total time, prompt tokens, answer
accuracy (a gold answer appears in the answer) and answers citing `[n]`.

    python bench/answers.py --articles A.jsonl --questions Q.jsonl [--distractors D.jsonl]
        [--limit 30] [--seed 7] [--out bench/results/answers.json]

The index is the evaluation harness's (built once, cached in `.citeqa-eval/`). Each chain has its
own copy of the model (so each keeps its own prompt prefix in llama.cpp's cache), and the two take
turns question by question, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from index.embeddings import open_embedder_for
from qa import Settings, build_chain, enforce_offline
from qa.chain import QAChain
from qa.citations import clean_markers, find_markers
from qa.eval.data import EvalQuestion, load_questions
from qa.eval.metrics import answer_accuracy
from qa.eval.runner import CorpusSpec, load_corpus, prepare_index
from qa.llm import count_prompt_tokens, open_llm
from qa.prompt import fixed_messages

ROOT = Path(__file__).resolve().parent.parent
# The recipe of the LangChain tutorials: every retrieved chunk stuffed into one prompt.
NAIVE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question using only the context. Cite the passages you use as [n].",
        ),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def naive_answer(chain: QAChain, asked: EvalQuestion) -> dict[str, Any]:
    """The naive chain: dense top 4 chunks, stuffed into one prompt, streamed."""
    assert chain.llm is not None
    question = asked.question
    started = time.perf_counter()
    hits = chain.retriever.model_copy(update={"mode": "dense"}).search(question, 4).passages
    context = "\n\n".join(f"[{i}] {h.chunk.text}" for i, h in enumerate(hits, start=1))
    runnable = NAIVE_PROMPT | chain.llm | StrOutputParser()
    first: float | None = None
    pieces = []
    for piece in runnable.stream({"context": context, "question": question}):
        if piece and first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    messages = NAIVE_PROMPT.format_messages(context=context, question=question)
    tokens = count_prompt_tokens(chain.llm, messages)
    fixed = count_prompt_tokens(chain.llm, messages[:1])
    return {
        "text": "".join(pieces),
        "first": first,
        "total": time.perf_counter() - started,
        "tokens": tokens,
        "new_tokens": None if tokens is None or fixed is None else tokens - fixed,
    }


def citeqa_answer(chain: QAChain, asked: EvalQuestion) -> dict[str, Any]:
    """citeqa's chain, asked as of the question's date when it has one (news), else today."""
    answer = chain.invoke({"question": asked.question, "as_of": asked.question_date})
    assert chain.llm is not None
    fixed = count_prompt_tokens(chain.llm, fixed_messages())
    tokens = answer.prompt_tokens
    return {
        "text": answer.text,
        "first": answer.seconds_to_first_token,
        "total": answer.seconds_total,
        "tokens": tokens,
        "new_tokens": None if tokens is None or fixed is None else tokens - fixed,
        "covered": answer.covered,
        "unsupported": len(answer.unsupported),
    }


def summarise(rows: Sequence[dict[str, Any]], questions: Sequence[EvalQuestion]) -> dict[str, Any]:
    firsts = [r["first"] for r in rows if r["first"] is not None]
    tokens = [r["tokens"] for r in rows if r["tokens"] is not None]
    new_tokens = [r["new_tokens"] for r in rows if r.get("new_tokens") is not None]
    return {
        "questions": len(rows),
        "answer_accuracy": statistics.fmean(
            answer_accuracy(clean_markers(r["text"], set()), q.answers)
            for r, q in zip(rows, questions, strict=True)
        ),
        "first_token_median_s": statistics.median(firsts) if firsts else None,
        "total_median_s": statistics.median(r["total"] for r in rows),
        "prompt_tokens_median": statistics.median(tokens) if tokens else None,
        "new_prompt_tokens_median": statistics.median(new_tokens) if new_tokens else None,
        "citing_share": statistics.fmean(bool(find_markers(r["text"])) for r in rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--distractors", type=Path)
    parser.add_argument("--distractors-limit", type=int)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".citeqa-eval")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answers.json")
    args = parser.parse_args(argv)
    enforce_offline()
    settings = Settings.from_env().model_copy(update={"llm_model": args.model})
    embedder = open_embedder_for(settings)
    articles = load_corpus(CorpusSpec(args.articles, args.distractors, args.distractors_limit))
    settings = prepare_index(articles, settings, embedder, args.cache_dir)
    questions = load_questions(args.questions)
    questions = random.Random(args.seed).sample(questions, min(args.limit, len(questions)))
    chain = build_chain(settings)
    naive_chain = QAChain(chain.retriever, open_llm(settings), settings)
    asks = {"naive": (naive_chain, naive_answer), "citeqa": (chain, citeqa_answer)}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in asks}
    payload: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.system()}, {settings.llm_threads} threads",
        "model": args.model,
        "questions_file": args.questions.name,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for number, question in enumerate(questions, start=1):
        for name, (runner, ask) in asks.items():
            rows[name].append({"id": question.id, **ask(runner, question)})
        payload.update(compare(rows, questions[:number]))
        # Written after every question, so that an interrupted run still reports.
        args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(
            f"{number}/{len(questions)}: first token naive "
            f"{rows['naive'][-1]['first']}, citeqa {rows['citeqa'][-1]['first']}",
            flush=True,
        )
    naive, ours = payload["naive"]["summary"], payload["citeqa"]["summary"]
    print_table(naive, ours, payload["first_token_ratio"])
    print(f"\nWrote {args.out}")
    return 0


def compare(
    rows: dict[str, list[dict[str, Any]]], questions: Sequence[EvalQuestion]
) -> dict[str, Any]:
    """Both chains' summaries and the ratio of their median times to first token."""
    results: dict[str, dict[str, Any]] = {
        name: {"summary": summarise(found, questions), "rows": found}
        for name, found in rows.items()
    }
    naive = results["naive"]["summary"]["first_token_median_s"]
    ours = results["citeqa"]["summary"]["first_token_median_s"]
    return {**results, "first_token_ratio": ours / naive if ours and naive else None}


def print_table(naive: dict[str, Any], ours: dict[str, Any], ratio: float | None) -> None:
    def fmt(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    print(
        "\n| chain | questions | answer accuracy | first token (median s) | total (median s) "
        "| prompt tokens (median) | after the cached prefix (median) | answers citing |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s in (("naive stuff-4", naive), ("citeqa", ours)):
        print(
            f"| {name} | {s['questions']} | {fmt(s['answer_accuracy'])} | "
            f"{fmt(s['first_token_median_s'], 1)} | {fmt(s['total_median_s'], 1)} | "
            f"{fmt(s['prompt_tokens_median'], 0)} | {fmt(s['new_prompt_tokens_median'], 0)} | "
            f"{fmt(s['citing_share'])} |"
        )
    print(f"\nTime to first token, citeqa / naive: {fmt(ratio)}x (target <= 0.40)")


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m qa ask "question"`: answer a question from the index, with its sources.
`python -m qa doctor`: check the CPU, the llama.cpp build, the models and the index."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from index.cli import run_command
from qa.citations import format_sources
from qa.config import LLM_BACKENDS, Settings
from qa.types import Answer, refusal_reason


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qa", description=__doc__)
    parser.add_argument("--index-dir", type=Path, help="index directory (CITEQA_INDEX_DIR)")
    parser.add_argument("--model", help="language model (CITEQA_LLM_MODEL)")
    parser.add_argument(
        "--backend", choices=LLM_BACKENDS, help="who writes the answer (CITEQA_LLM_BACKEND)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="the date the question is asked on: nothing published later is used, and 'this "
        "week' or 'latest' are read against it (default: today)",
    )
    commands.add_parser(
        "doctor",
        help="check the CPU, the llama.cpp build, the models, the index and a few tokens of "
        "generation, and say what to do about each problem",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv, run)


def run(args: argparse.Namespace) -> int:
    """The command named in `args`; its exit status."""
    from qa.chain import build_chain, check_as_of, check_question

    settings = Settings.from_env()
    overrides = {
        "index_dir": args.index_dir,
        "llm_model": args.model,
        "llm_backend": args.backend,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
    if args.command == "doctor":
        return run_doctor(settings)
    check_question(args.question, settings.max_question_chars)
    as_of = check_as_of(args.as_of)
    chain = build_chain(settings)
    streaming = sys.stdout.isatty()
    streamed: list[str] = []
    for event in chain.events(args.question, as_of=as_of):
        if isinstance(event, Answer):
            print_answer(event, "".join(streamed))
        elif streaming:
            streamed.append(event)
            print(event, end="", flush=True)
    return 0


def run_doctor(settings: Settings) -> int:
    """Print each check as it finishes; 1 if any failed."""
    from qa.doctor import format_check, run_checks

    failed = 0
    for check in run_checks(settings):
        print(format_check(check), flush=True)
        failed += not check.ok
    print("All checks passed." if not failed else f"{failed} check(s) failed.")
    return 1 if failed else 0


def print_answer(answer: Answer, streamed: str) -> None:
    """The checked answer (again, if the check changed what was streamed), any notice, the
    sentences no passage backs, and the sources."""
    if streamed:
        print()
    if answer.text != streamed.strip():
        print(("\nChecked answer: " if streamed else "") + answer.text)
    if answer.notice:
        print(f"\nNote: {answer.notice}")
    if not answer.covered:
        print(f"\nWhy: {refusal_reason(answer.refused)}")
    if answer.time_scope:
        print(f"\nSearched {answer.time_scope}, as of {answer.as_of}.")
    for sentence in answer.unsupported:
        print(f"\nUnsupported by the articles: {sentence}")
    if answer.citations:
        print("\nSources:")
        print(format_sources(answer.citations))


if __name__ == "__main__":
    raise SystemExit(main())

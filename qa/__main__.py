"""`python -m qa ask "question"`: answer a question from the index, with its sources."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from index.errors import CiteqaIndexError
from index.offline import enforce_offline
from qa.citations import format_sources
from qa.errors import CiteqaQAError
from qa.types import Answer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qa", description=__doc__)
    parser.add_argument("--index-dir", type=Path, help="index directory (CITEQA_INDEX_DIR)")
    parser.add_argument("--model", help="language model (CITEQA_LLM_MODEL)")
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question", help="the question, in quotes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    enforce_offline()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from qa.chain import build_chain, check_question
    from qa.config import Settings

    try:
        settings = Settings.from_env()
        overrides = {"index_dir": args.index_dir, "llm_model": args.model}
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
        check_question(args.question, settings.max_question_chars)
        chain = build_chain(settings)
        streaming = sys.stdout.isatty()
        for event in chain.events(args.question):
            if isinstance(event, Answer):
                print_answer(event, streamed=streaming)
            elif streaming:
                print(event, end="", flush=True)
        return 0
    except (CiteqaQAError, CiteqaIndexError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nError: interrupted.", file=sys.stderr)
        return 1


def print_answer(answer: Answer, *, streamed: bool) -> None:
    """The answer's sources, after the text unless it was already streamed to the terminal."""
    print("\n" if streamed else answer.text)
    if answer.citations:
        print("\nSources:")
        print(format_sources(answer.citations))


if __name__ == "__main__":
    raise SystemExit(main())

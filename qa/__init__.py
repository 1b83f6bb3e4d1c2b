"""Question answering over the article index: `answer`, `stream` and `build_chain`.

`answer` and `stream` use a default chain built on first use from `CITEQA_*` settings and kept
for later calls; `build_chain(Settings(...))` gives a chain with settings of your own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cache

from index.offline import enforce_offline
from qa.chain import QAChain, build_chain
from qa.config import Settings
from qa.prompt import History
from qa.types import (
    NOT_COVERED,
    Answer,
    CheckedSentence,
    Citation,
    RetrievedChunk,
    refusal_reason,
)

__all__ = [
    "NOT_COVERED",
    "Answer",
    "CheckedSentence",
    "Citation",
    "History",
    "QAChain",
    "RetrievedChunk",
    "Settings",
    "answer",
    "build_chain",
    "default_chain",
    "enforce_offline",
    "refusal_reason",
    "stream",
]


@cache
def default_chain() -> QAChain:
    """The chain for `answer` and `stream`, built once from the environment's settings."""
    enforce_offline()
    return build_chain(Settings.from_env())


def answer(question: str, history: History = (), as_of: dt.date | str | None = None) -> Answer:
    """Answer from the indexed articles; `history` holds earlier (question, answer) pairs;
    `as_of` is the date the question is asked on (a date or `YYYY-MM-DD`; default today)."""
    return default_chain().invoke({"question": question, "history": history, "as_of": as_of})


def stream(
    question: str, history: History = (), as_of: dt.date | str | None = None
) -> Iterator[str | Answer]:
    """Yield the answer's text as it is written, then the complete `Answer`."""
    return default_chain().events(question, history, as_of=as_of)

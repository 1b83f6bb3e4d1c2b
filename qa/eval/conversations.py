"""Multi-turn conversations for measuring follow-up questions: the `conversations.jsonl` schema,
its loader, and article recall of follow-up turns asked raw, rewritten, and as the hand-written
standalone question (the ceiling)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qa.eval.data import EvalDataError
from qa.eval.metrics import mean, recall_at_k
from qa.retrieval import PassageRetriever
from qa.rewrite import rewrite_question

History = Sequence[tuple[str, str]]
Rewrite = Callable[[str, History], str]
# The queries asked for every follow-up turn, in report order.
FOLLOW_UP_QUERIES = ("raw", "rewritten", "standalone")


class ConversationDataError(EvalDataError, ValueError):
    """A conversations file cannot be read (a `ValueError` too, for callers outside the CLI)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One user turn: the question as asked, its gold answers and articles, and a hand-written
    standalone version of the question (what a perfect rewrite would give)."""

    question: str
    answers: tuple[str, ...]
    article_ids: tuple[str, ...]
    standalone: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """Turns in the order they are asked; the first stands alone, later ones lean on it."""

    id: str
    article_ids: tuple[str, ...]
    turns: tuple[Turn, ...]


class _TurnRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    answers: list[str] = Field(min_length=1)
    article_ids: list[str] = Field(min_length=1)
    standalone: str = Field(min_length=1)


class _ConversationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    article_ids: list[str] = Field(min_length=1)
    turns: list[_TurnRecord] = Field(min_length=1)

    def to_conversation(self) -> Conversation:
        return Conversation(
            id=self.id,
            article_ids=tuple(self.article_ids),
            turns=tuple(
                Turn(t.question, tuple(t.answers), tuple(t.article_ids), t.standalone)
                for t in self.turns
            ),
        )


def load_conversations(path: Path) -> list[Conversation]:
    """Every conversation of a JSON Lines file; `ConversationDataError` (a `ValueError`) naming
    the line of the first bad record or repeated id."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConversationDataError(f"Cannot read the conversations file {path}: {e}") from e
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            conversation = _ConversationRecord.model_validate(json.loads(line)).to_conversation()
        except (ValueError, ValidationError) as e:
            raise ConversationDataError(f"{path}:{number}: not a conversation record ({e})") from e
        if conversation.id in seen:
            raise ConversationDataError(f"{path}:{number}: repeated id {conversation.id!r}")
        seen.add(conversation.id)
        conversations.append(conversation)
    if not conversations:
        raise ConversationDataError(f"No conversations in {path}.")
    return conversations


def gold_reply(turn: Turn) -> str:
    """The assistant's reply to `turn` when a conversation is replayed: its first gold answer,
    cited as the chain would cite it."""
    return f"{turn.answers[0]} [1]."


def follow_up_recall(
    retriever: PassageRetriever,
    conversations: Sequence[Conversation],
    rewrite: Rewrite,
    k: int = 5,
) -> dict[str, Any]:
    """Replay each conversation (earlier turns answered with their gold answer) and measure
    article recall@k of every follow-up turn asked raw, as `rewrite(question, history)` gives it,
    and as its gold standalone question; first turns are measured too, for reference.

    Returns `k`, the counts, `recall` (`first_turns`, `raw`, `rewritten`, `standalone`; None
    where there is no turn to score) and `turns`: per follow-up turn, the rewrite and which
    queries found a gold article."""

    def hit(query: str, turn: Turn) -> float:
        retrieved = retriever.search(query, k).passages
        return recall_at_k([h.chunk.article_id for h in retrieved], set(turn.article_ids), k)

    first: list[float] = []
    scores: dict[str, list[float]] = {name: [] for name in FOLLOW_UP_QUERIES}
    turns: list[dict[str, Any]] = []
    for conversation in conversations:
        history: list[tuple[str, str]] = []
        for position, turn in enumerate(conversation.turns, start=1):
            if position == 1:
                first.append(hit(turn.question, turn))
            else:
                queries = dict(
                    zip(
                        FOLLOW_UP_QUERIES,
                        (turn.question, rewrite(turn.question, tuple(history)), turn.standalone),
                        strict=True,
                    )
                )
                hits = {name: hit(query, turn) for name, query in queries.items()}
                for name, value in hits.items():
                    scores[name].append(value)
                turns.append(
                    {
                        "conversation": conversation.id,
                        "turn": position,
                        "question": turn.question,
                        "rewritten": queries["rewritten"],
                        "hits": hits,
                    }
                )
            history.append((turn.question, gold_reply(turn)))
    return {
        "k": k,
        "conversation_count": len(conversations),
        "follow_up_count": len(turns),
        "recall": {"first_turns": mean(first), **{n: mean(v) for n, v in scores.items()}},
        "turns": turns,
    }


def measure_rewrites(
    retriever: PassageRetriever,
    conversations: Sequence[Conversation],
    llm: BaseChatModel | None,
    k: int = 5,
) -> dict[str, dict[str, Any]]:
    """`follow_up_recall` with the rule-based rewrite (`rules`) and, when `llm` is given, with
    the model's rewrite (`model`)."""
    results = {
        "rules": follow_up_recall(
            retriever, conversations, lambda q, h: rewrite_question(q, h, None), k
        )
    }
    if llm is not None:
        results["model"] = follow_up_recall(
            retriever, conversations, lambda q, h: rewrite_question(q, h, llm), k
        )
    return results


def format_follow_up(results: dict[str, dict[str, Any]]) -> str:
    """A table of follow-up recall, a row per rewrite (`results` maps its name to the output of
    `follow_up_recall`)."""
    header = ["rewrite", "first turns", "raw", "rewritten", "standalone", "follow-ups"]
    rows = [header]
    for name, result in results.items():
        recall = result["recall"]
        cells = [recall[key] for key in ("first_turns", *FOLLOW_UP_QUERIES)]
        rows.append(
            [
                name,
                *("-" if v is None else f"{v:.3f}" for v in cells),
                str(result["follow_up_count"]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )

"""The answer prompt: the messages the model reads for one question.

The fixed part (the rules and one worked example) comes first, so the model's worker keeps it
cached; then the earlier answered turns, the selected passage sentences and the question.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from prompts import render_prompt
from qa.citations import clean_markers
from qa.evidence import Evidence
from qa.shape import asked_kind
from qa.text import strip_markers
from qa.types import NOT_COVERED

History = Sequence[tuple[str, str]]


def answered_turns(history: History) -> list[tuple[str, str]]:
    """The earlier turns that got a real answer: a refusal must not steer later turns."""
    return [(q, a) for q, a in history if a.strip() and not is_not_covered(a)]


def is_not_covered(text: str) -> bool:
    """True if the model gave the fixed "not covered" reply (allowing quote and case variants)."""
    normal = text.strip().lower().replace("\u2019", "'")
    return normal.startswith(NOT_COVERED.lower().rstrip("."))


def format_passages(
    evidence: Evidence,
    count_tokens: Callable[[str], int],
    budget: int,
    best_last: bool = False,
) -> str:
    """The passages as the model reads them: only their sentences that best answer the
    question (within `budget` tokens), numbered as retrieved, gaps shown as "...". With
    `best_last` the best-ranked passage comes last, next to the question."""
    blocks = []
    selected = list(evidence.select(budget, count_tokens).items())
    for number, chosen in reversed(selected) if best_last else selected:
        chunk = evidence.passages[number - 1].chunk
        pieces: list[str] = []
        previous: int | None = None
        for i in chosen:
            if previous is not None and i != previous + 1:
                pieces.append("...")
            pieces.append(strip_markers(evidence.sentences[i].text))
            previous = i
        blocks.append(
            render_prompt(
                "passage",
                number=str(number),
                heading=passage_heading(strip_markers(chunk.title), chunk.published),
                text=" ".join(pieces),
            )
        )
    return "\n\n".join(blocks)


def passage_heading(title: str, published: str | None) -> str:
    """`Title (2024-03-19)`: what the model reads above a passage. The outlet is left out (the
    sources panel shows it from the index); the date stays, for questions about when."""
    date = (published or "").split("T")[0].strip()
    return f"{title} ({date})" if date else title


def fixed_messages() -> list[BaseMessage]:
    """The start of every answer prompt: the rules and one worked example (a small model copies
    an example sentence written into the rules; an example exchange it follows)."""
    return [
        SystemMessage(render_prompt("answer_system", not_covered=NOT_COVERED)),
        HumanMessage(render_prompt("example_user")),
        AIMessage(render_prompt("example_answer")),
    ]


def answer_notes(question: str, shape: str, evidence: Evidence, today: str | None) -> str:
    """What the model is told about this question beside the fixed rules: how long to answer
    (a few sentences for an open question or a digest), what kind of thing a factoid question
    asks for by name ("which state"), and, when the passages carry several dates or the
    question names a time, today's date and that the newest passage wins."""
    notes = []
    if shape in ("open", "digest"):
        notes.append(render_prompt(f"note_{shape}"))
    elif (kind := asked_kind(question)) is not None:
        notes.append(render_prompt("note_kind", kind=kind))
    if today is not None and len(passage_dates(evidence)) > 1:
        notes.append(render_prompt("note_dated", today=today))
    return "".join(f"{note}\n\n" for note in notes)


def passage_dates(evidence: Evidence) -> set[str]:
    """The days the passages were published on (none for undated documents)."""
    return {p.chunk.published[:10] for p in evidence.passages if p.chunk.published}


def best_last(shape: str, evidence: Evidence) -> bool:
    """Whether the best passage is shown last, next to the question: for a factoid question
    over news (dated passages), where the small model then less often names the answer of a
    passage further down; on undated documents it made no difference (docs/evaluation.md). An
    open answer's passages stay in time order."""
    return shape == "factoid" and bool(passage_dates(evidence))


def build_messages(
    question: str,
    evidence: Evidence,
    history: History,
    count_tokens: Callable[[str], int],
    budget: int,
    shape: str = "factoid",
    today: str | None = None,
) -> list[BaseMessage]:
    """The fixed part first, so the model's cache keeps it, then the earlier answered turns,
    the selected passage sentences, what to note about this question (`answer_notes`) and the
    question."""
    messages = fixed_messages()
    for past_question, past_answer in answered_turns(history):
        messages.append(HumanMessage(past_question))
        messages.append(AIMessage(clean_markers(past_answer, set())))
    messages.append(
        HumanMessage(
            render_prompt(
                "answer_user",
                passages=format_passages(
                    evidence, count_tokens, budget, best_last(shape, evidence)
                ),
                notes=answer_notes(question, shape, evidence, today),
                question=question,
            )
        )
    )
    return messages

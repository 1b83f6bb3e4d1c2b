"""The answer's domain objects: retrieved passages, citations and the answer itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from index.stored import RetrievedChunk as RetrievedChunk  # the one hit type, from the index

NOT_COVERED = "The articles don't cover this."


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What retrieval found for a question: the passages, best first; the question's vector
    (the evidence reuses it: the question is embedded once); the seconds each stage took."""

    passages: tuple[RetrievedChunk, ...]
    question_vector: tuple[float, ...]
    timings: dict[str, float]


@dataclass(frozen=True, slots=True)
class Citation:
    """What an answer's `[marker]` cites; `start`/`end` locate the passage in its article and
    `spans` the parts of the passage (offsets into `passage`) that back the citing sentences."""

    marker: int
    article_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    passage: str
    start: int
    end: int
    score: float
    spans: tuple[tuple[int, int], ...] = ()
    support: float = 0.0  # how well the best span backs its sentence, in [0, 1]


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    """One sentence of an answer after the citation check. `markers` are the passages that back
    it; `supported` is False when no retrieved passage does (the sentence is shown flagged).
    `score` is the best support found (None for sentences with nothing to check)."""

    text: str
    markers: tuple[int, ...]
    supported: bool
    score: float | None


# Why an answer is "not covered", each the step that decided it, in the chain's order.
REFUSALS = {
    "gate": "No indexed passage is close enough to this question.",
    "model": "The closest passages were read, and they do not answer it.",
    "check": "An answer was written, but no passage it cited backs it, so it is not shown.",
    "relevance": "An answer was written, but what it cites does not match the question closely.",
}


def refusal_reason(refused: str | None) -> str:
    """What a "not covered" answer tells the reader about why (answers saved before the reason
    was kept get the gate's)."""
    return REFUSALS.get(refused or "gate", REFUSALS["gate"])


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer with `[n]` markers, what they cite, and every passage that was retrieved."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    retrieved: tuple[RetrievedChunk, ...]
    covered: bool = True
    seconds_to_first_token: float | None = None
    seconds_total: float = 0.0
    # Seconds per stage: "embed", "search", "generate" (the last only when the model ran).
    timings: Mapping[str, float] = field(default_factory=dict)
    prompt_tokens: int | None = None  # tokens sent to the model, when it was called
    sentences: tuple[CheckedSentence, ...] = ()  # the checked sentences of `text`
    backend: str = "local"  # who wrote the text: "local", "openai" or "extractive"
    notice: str | None = None  # shown beside the answer, e.g. why the extractive fallback ran
    standalone_question: str | None = None  # the rewrite used for retrieval, for a follow-up
    # How well the passage text backing the answer matches the question, in [0, 1].
    relevance: float | None = None
    as_of: str | None = None  # the date the question was asked on (YYYY-MM-DD)
    # The publication days searched, when the question named a time ("this week", "latest").
    time_scope: str | None = None
    shape: str = "factoid"  # "factoid" (one sentence), "open" (a few) or "digest" (a period's news)
    # Why an answer is "not covered" (None when covered): see `REFUSALS`.
    refused: str | None = None

    @property
    def unsupported(self) -> tuple[str, ...]:
        """Sentences no retrieved passage backs."""
        return tuple(s.text for s in self.sentences if not s.supported)


@dataclass(frozen=True, slots=True)
class Generated:
    """What the model wrote for one prompt: its text, the seconds from the question to its first
    piece, and why the text cannot be used (a failure, the timeout, no text), if so."""

    text: str
    first_token_s: float | None
    notice: str | None

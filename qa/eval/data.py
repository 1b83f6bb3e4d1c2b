"""Evaluation questions in the shared schema (`questions.*.jsonl`), read into typed records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from qa.errors import CiteqaQAError
from qa.eval.metrics import GoldSpan


class EvalDataError(CiteqaQAError):
    """An evaluation file cannot be read."""


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """A question with its gold answers, gold articles and (SQuAD) gold character spans."""

    id: str
    question: str
    answers: tuple[str, ...]
    article_ids: tuple[str, ...]
    evidence_spans: tuple[GoldSpan, ...] = ()
    answer_spans: tuple[GoldSpan, ...] = ()
    # The date the question was asked on (news quizzes), used as its as-of date.
    question_date: str | None = None
    # Open questions: the key facts a good answer states, each as strings any of which shows it.
    key_facts: tuple[tuple[str, ...], ...] = ()
    # Other fields of the record (`answerable_strict`, `relative_time`, `corpus`, ...), as text,
    # for choosing a subset.
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, name: str) -> str | None:
        return dict(self.tags).get(name)


class _KeyFact(BaseModel):
    fact: str = ""
    any_of: list[str]


class _Span(BaseModel):
    article_id: str
    start: int
    end: int


class _QuestionRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    answers: list[str] = []
    article_ids: list[str]
    evidence_spans: list[_Span] = []
    answer_spans: list[_Span] = []
    question_date: str | None = None
    as_of: str | None = None  # (open questions name it so)
    key_facts: list[_KeyFact] = []

    def to_question(self, extra: dict[str, object]) -> EvalQuestion:
        return EvalQuestion(
            id=self.id,
            question=self.question,
            answers=tuple(self.answers),
            article_ids=tuple(self.article_ids),
            evidence_spans=tuple(
                GoldSpan(s.article_id, s.start, s.end) for s in self.evidence_spans
            ),
            answer_spans=tuple(GoldSpan(s.article_id, s.start, s.end) for s in self.answer_spans),
            question_date=self.question_date or self.as_of,
            key_facts=tuple(tuple(f.any_of) for f in self.key_facts),
            tags=tuple(
                (name, str(value).lower() if isinstance(value, bool) else str(value))
                for name, value in extra.items()
                if name not in type(self).model_fields and isinstance(value, str | int | bool)
            ),
        )


def load_questions(path: Path, limit: int | None = None) -> list[EvalQuestion]:
    """The first `limit` questions of a JSON Lines file (all when `limit` is None)."""
    questions: list[EvalQuestion] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise EvalDataError(f"Cannot read the questions file {path}: {e.strerror or e}") from e
    for number, line in enumerate(lines, start=1):
        if limit is not None and len(questions) >= limit:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(_QuestionRecord.model_validate(record).to_question(record))
        except (ValueError, ValidationError) as e:
            raise EvalDataError(f"{path}:{number}: not a question record ({e})") from e
    if not questions:
        raise EvalDataError(f"No questions in {path}.")
    return questions


def choose_subset(questions: list[EvalQuestion], subset: str | None) -> list[EvalQuestion]:
    """The questions whose field `name` is true, or equals `value` (`subset` is `name` or
    `name=value`); all of them when `subset` is None."""
    if not subset:
        return questions
    name, _, value = subset.partition("=")
    wanted = value or "true"
    chosen = [q for q in questions if q.tag(name) == wanted]
    if not chosen:
        raise EvalDataError(f"No question has {name} = {wanted}.")
    return chosen

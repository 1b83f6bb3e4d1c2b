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


class _Span(BaseModel):
    article_id: str
    start: int
    end: int


class _QuestionRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    answers: list[str]
    article_ids: list[str]
    evidence_spans: list[_Span] = []
    answer_spans: list[_Span] = []

    def to_question(self) -> EvalQuestion:
        return EvalQuestion(
            id=self.id,
            question=self.question,
            answers=tuple(self.answers),
            article_ids=tuple(self.article_ids),
            evidence_spans=tuple(
                GoldSpan(s.article_id, s.start, s.end) for s in self.evidence_spans
            ),
            answer_spans=tuple(GoldSpan(s.article_id, s.start, s.end) for s in self.answer_spans),
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
            questions.append(_QuestionRecord.model_validate(json.loads(line)).to_question())
        except (ValueError, ValidationError) as e:
            raise EvalDataError(f"{path}:{number}: not a question record ({e})") from e
    if not questions:
        raise EvalDataError(f"No questions in {path}.")
    return questions

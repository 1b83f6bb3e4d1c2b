"""The answer's shape follows the question."""

from __future__ import annotations

import pytest

from qa.chain import first_sentences
from qa.shape import answer_shape, asked_kind


@pytest.mark.parametrize(
    ("question", "shape"),
    [
        ("Who is Wang Lei?", "factoid"),
        ("When did the harbour reopen?", "factoid"),
        ("How many people died?", "factoid"),
        ("How did the Black Death spread to Europe?", "factoid"),
        (
            "What did China and the EU discuss at the cyber taskforce meeting, and what did "
            "China offer?",
            "open",
        ),
        ("Who won? Who lost?", "open"),
        ("What happened at the summit?", "open"),
        ("How did the oil crisis develop after the embargo?", "open"),
        ("How has the strike changed since March?", "open"),
        ("What are the arguments for the new law?", "open"),
        ("Tell me about the Apollo program.", "open"),
    ],
)
def test_shape(question: str, shape: str) -> None:
    assert answer_shape(question) == shape


def test_a_question_naming_only_a_time_gets_a_digest() -> None:
    assert answer_shape("What happened this week?", only_news=True) == "digest"


def test_an_open_answer_keeps_its_first_five_sentences() -> None:
    text = "A one [1]. B two [2]. C three [1]. D four [3]. E five [2]. F six [1]. G seven [4]."
    assert first_sentences(text) == "A one [1]. B two [2]. C three [1]. D four [3]. E five [2]."
    assert first_sentences("Only one [1].") == "Only one [1]."


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Which popular online game agreed a $245 million settlement with the FTC?", "game"),
        ("Which social media platform will make teen accounts private?", "platform"),
        ("Which state issued flood alerts this week to nearly its entire population?", "state"),
        ("What country is the happiest, according to the report?", "country"),
        ("Which  City of Italy hosted the final?", "city"),
        ("Who is Wang Lei?", None),
        ("Which of the candidates won?", None),
        ("What is the capital city of France?", None),
        ("How many states voted?", None),
        ("Border agents can remove what installed by state officials?", None),
        ("Which country's imports became the mass market leaders?", None),
    ],
)
def test_the_kind_of_thing_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asked_kind(question) == kind

"""Follow-up questions made standalone: the rule, and the model rewrite with a real model."""

from __future__ import annotations

import pytest

from qa import QAChain
from qa.rewrite import clean_rewrite, needs_context, rewrite_by_rules, rewrite_question

HISTORY = [
    ("When was the Yuan dynasty proclaimed?", "In 1271 [1]."),
    ("Who proclaimed it?", "Kublai Khan [2]."),
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("and when did it open?", True),
        ("Where did he speak?", True),
        ("What about 1990?", True),
        ("How long?", True),
        ("Who is Wang Lei?", False),
        ("When was the Golden Gate Bridge in San Francisco opened?", False),
        ("Which team won the Super Bowl in the year 2016?", False),
        ("", False),
    ],
)
def test_needs_context(question: str, expected: bool) -> None:
    assert needs_context(question) is expected


def test_rule_carries_topic_words_back_to_the_last_standalone_question() -> None:
    assert rewrite_by_rules("And how long did it last?", HISTORY) == (
        "And how long did it last? (proclaimed Yuan dynasty Kublai Khan)"
    )


def test_rule_leaves_standalone_questions_and_first_turns_alone() -> None:
    standalone = "Which team won the Super Bowl in the year 2016?"
    assert rewrite_by_rules(standalone, HISTORY) == standalone
    assert rewrite_by_rules("and when did it open?", []) == "and when did it open?"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Standalone question: When did the bridge open?", "When did the bridge open?"),
        ('"When did the bridge open?"\nBecause...', "When did the bridge open?"),
        ("", ""),
    ],
)
def test_clean_rewrite(reply: str, expected: str) -> None:
    assert clean_rewrite(reply) == expected


def test_model_rewrite_gives_one_line_with_a_real_model(smol_chain: QAChain) -> None:
    rewritten = rewrite_question(
        "Where did he speak?", [("Who is Wang Lei?", "A diplomat.")], smol_chain.llm
    )
    assert rewritten.strip()
    assert "\n" not in rewritten
    # A standalone question is never sent to the model at all.
    assert rewrite_question("Who is Wang Lei?", [("x", "y")], smol_chain.llm) == "Who is Wang Lei?"

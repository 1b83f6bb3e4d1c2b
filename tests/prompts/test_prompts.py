"""Templates and the fields their callers fill in stay in step."""

from __future__ import annotations

import pytest

from prompts import PromptError, prompt_fields, render_prompt


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("answer_system", {"not_covered"}),
        ("answer_user", {"passages", "notes", "question"}),
        ("note_open", set()),
        ("note_digest", set()),
        ("note_dated", {"today"}),
        ("note_kind", {"kind"}),
        ("rewrite_system", set()),
        ("example_user", set()),
        ("example_answer", set()),
        ("passage", {"number", "heading", "text"}),
    ],
)
def test_template_fields(name: str, fields: set[str]) -> None:
    assert prompt_fields(name) == fields


def test_render_refuses_missing_or_unexpected_fields() -> None:
    with pytest.raises(PromptError, match="expects fields"):
        render_prompt("passage", number="1", heading="T")
    with pytest.raises(PromptError, match="expects fields"):
        render_prompt("answer_system", not_covered="x", extra="y")
    with pytest.raises(PromptError, match="No prompt template"):
        render_prompt("missing")


def test_render_fills_in_values() -> None:
    text = render_prompt("passage", number="3", heading="T (2024-03-19)", text="Body")
    assert text == "[3] T (2024-03-19)\nBody"

"""The default Qwen2.5-Coder-1.5B model end to end through the Python API (the command line's
answer with it: tests/test_defaults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import qa
from tests.conftest import XINHUA_TITLE

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_python_answer_cites_the_xinhua_article(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITEQA_INDEX_DIR", str(sample_index))
    qa.default_chain.cache_clear()
    try:
        answer = qa.answer("Who is Wang Lei?")
        events = list(qa.stream("Who is Wang Lei?"))
    finally:
        qa.default_chain.cache_clear()
    assert answer.covered
    assert "coordinator" in answer.text.lower() or "diplomat" in answer.text.lower()
    assert answer.citations, answer.text
    assert {c.title for c in answer.citations} == {XINHUA_TITLE}
    cited = answer.citations[0]
    assert cited.source == "Xinhua"
    assert cited.published == "2024-03-19"
    assert "Wang Lei" in answer.retrieved[cited.marker - 1].chunk.text
    assert isinstance(events[-1], qa.Answer)
    assert "".join(e for e in events[:-1] if isinstance(e, str)).strip()
    assert events[-1].text == answer.text  # greedy decoding: the same answer twice

"""Assertions several test modules make about answers."""

from __future__ import annotations

from qa import Answer
from qa.citations import find_markers
from qa.types import NOT_COVERED


def assert_cites_only_retrieved(answer: Answer) -> None:
    """Every marker, in the text, the sentences and the citations, is a retrieved passage, and
    each citation describes that passage."""
    count = len(answer.retrieved)
    numbers = {c.marker for c in answer.citations}
    assert numbers <= set(range(1, count + 1))
    assert set(find_markers(answer.text)) <= numbers, (answer.text, numbers)
    for sentence in answer.sentences:
        assert set(sentence.markers) <= numbers
        assert set(find_markers(sentence.text)) == set(), sentence.text
    for citation in answer.citations:
        chunk = answer.retrieved[citation.marker - 1].chunk
        assert citation.passage == chunk.text
        assert citation.article_id == chunk.article_id
        for start, end in citation.spans:
            assert 0 <= start < end <= len(citation.passage)
    if not answer.covered:
        assert answer.text == NOT_COVERED
        assert answer.citations == ()

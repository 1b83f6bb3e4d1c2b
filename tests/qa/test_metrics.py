"""Evaluation metrics checked exactly against hand-computed cases (pure functions)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from qa.eval.metrics import (
    GoldSpan,
    RetrievedSpan,
    answer_accuracy,
    citation_precision,
    exact_match,
    mean,
    normalize_answer,
    passage_hit_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
    spans_contain,
    spans_overlap,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  Hello,   World.  ", "hello world"),
        ("An apple a day", "apple day"),
        ("theatre and anthem", "theatre and anthem"),
        ("A.B.C.", "abc"),
        ("the-the", "thethe"),
        ("O'Neil's", "oneils"),
        ("Wendy\u2019s \u201cBaconator\u201d", "wendys baconator"),
        ("Tab\tand\nnewline", "tab and newline"),
        ("The", ""),
        ("", ""),
        ("1,000 people", "1000 people"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        ("The Denver Broncos!", ["denver broncos"], 1.0),
        ("Denver Broncos won", ["Denver Broncos"], 0.0),
        ("Carolina", ["Denver", "carolina."], 1.0),
        ("Denver", [], 0.0),
        ("", [""], 1.0),
        ("the", ["!"], 1.0),
        ("Broncos", ["Denver Broncos"], 0.0),
    ],
)
def test_exact_match(prediction: str, golds: list[str], expected: float) -> None:
    assert exact_match(prediction, golds) == expected


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        # p = 2/3, r = 1 -> 2 * (2/3) / (5/3) = 0.8
        ("Denver Broncos won", ["Denver Broncos"], 0.8),
        ("The Denver Broncos!", ["denver broncos"], 1.0),
        # p = 1, r = 1/2 -> 2/3
        ("Broncos", ["Denver Broncos"], 2 / 3),
        ("Carolina Panthers", ["Denver Broncos"], 0.0),
        # best of 0.0, 0.8 and (p = 1/3, r = 1 -> 0.5)
        ("Denver Broncos won", ["Panthers", "Denver Broncos", "Broncos"], 0.8),
        # Counter overlap: min(3, 1) = 1 shared; p = 1/3, r = 1 -> 0.5
        ("win win win", ["win"], 0.5),
        # 2 shared; p = 1, r = 2/3 -> 0.8
        ("win win", ["win win loss"], 0.8),
        # 2 shared; p = r = 1/2
        ("w x y z", ["y z q r"], 0.5),
        ("Denver", [], 0.0),
        ("", [""], 1.0),
        ("a", ["the"], 1.0),
        ("", ["Denver"], 0.0),
        ("the", ["Denver"], 0.0),
        ("Denver", ["an"], 0.0),
    ],
)
def test_token_f1(prediction: str, golds: list[str], expected: float) -> None:
    assert token_f1(prediction, golds) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        ("The Denver Broncos won Super Bowl 50.", ["Denver Broncos"], 1.0),
        ("The Denver Broncos!", ["denver broncos"], 1.0),
        ("Broncos", ["Denver Broncos"], 0.0),
        ("Denverite Broncos fans", ["Denver"], 0.0),
        ("Broncos Denver", ["Denver Broncos"], 0.0),
        ("It drew 1,000 people", ["1000"], 1.0),
        ("Panthers lost", ["Broncos", "panthers"], 1.0),
        ("anything", [], 0.0),
        ("anything", [""], 0.0),
        ("anything", ["the", "!"], 0.0),
        ("", ["Denver"], 0.0),
        ("Beyonce was named the greatest pop star", ["Beyoncé"], 1.0),
        ("It falls on George Washington\u2019s birthday", ["George Washington"], 1.0),
        ("Wendy's", ["Wendy\u2019s"], 1.0),
        ("Wendys", ["Wendy's"], 0.0),
        ("The Washingtons", ["Washington"], 0.0),
    ],
)
def test_answer_accuracy(prediction: str, golds: list[str], expected: float) -> None:
    assert answer_accuracy(prediction, golds) == expected


@pytest.mark.parametrize(
    ("ranked", "gold_ids", "k", "expected"),
    [
        (["a", "b", "c"], {"c"}, 3, 1.0),
        (["a", "b", "c"], {"c"}, 2, 0.0),
        (["a", "a", "a", "b"], {"b"}, 3, 0.0),
        (["a", "a", "a", "b"], {"b"}, 4, 1.0),
        (["a", "b"], {"b"}, 10, 1.0),
        (["a", "b"], {"x", "a"}, 1, 1.0),
        (["x", "y"], ["y"], 2, 1.0),
        ([], {"a"}, 5, 0.0),
        (["a"], set(), 5, 0.0),
        (["a", "b"], {"a"}, 0, 0.0),
    ],
)
def test_recall_at_k(ranked: list[str], gold_ids: Collection[str], k: int, expected: float) -> None:
    assert recall_at_k(ranked, gold_ids, k) == expected


@pytest.mark.parametrize(
    ("ranked", "gold_ids", "k", "expected"),
    [
        (["a", "b", "c"], {"a"}, 10, 1.0),
        (["a", "b", "c"], {"c"}, 10, 1 / 3),
        (["a", "a", "b"], {"b"}, 10, 1 / 3),
        (["a", "b", "b"], {"b"}, 10, 0.5),
        (["a", "b", "c", "d"], {"d"}, 3, 0.0),
        (["a", "b", "c", "d"], {"d"}, 4, 0.25),
        (["a", "b", "c", "d"], {"d", "b"}, 4, 0.5),
        ([], {"a"}, 10, 0.0),
        (["a", "b"], set(), 10, 0.0),
        (["a", "b"], {"a"}, 0, 0.0),
    ],
)
def test_reciprocal_rank(
    ranked: list[str], gold_ids: Collection[str], k: int, expected: float
) -> None:
    assert reciprocal_rank(ranked, gold_ids, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("gold_position", "expected"),
    [(1, 1.0), (10, 0.1), (11, 0.0)],
)
def test_reciprocal_rank_default_k_is_ten(gold_position: int, expected: float) -> None:
    ranked = ["x"] * 12
    ranked[gold_position - 1] = "gold"
    assert reciprocal_rank(ranked, {"gold"}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("chunk", "span", "expected"),
    [
        ((0, 100), (10, 20), True),
        ((0, 100), (0, 100), True),
        ((10, 20), (5, 15), False),
        ((10, 20), (15, 25), False),
        ((10, 20), (20, 30), False),
        ((10, 20), (9, 20), False),
        ((10, 20), (10, 21), False),
        ((10, 20), (0, 100), False),
    ],
)
def test_spans_contain(chunk: tuple[int, int], span: tuple[int, int], expected: bool) -> None:
    assert spans_contain(chunk[0], chunk[1], span[0], span[1]) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 10), (5, 15), True),
        ((0, 10), (10, 20), False),
        ((10, 20), (0, 10), False),
        ((0, 10), (2, 3), True),
        ((2, 3), (0, 10), True),
        ((0, 10), (11, 20), False),
        ((0, 10), (9, 10), True),
        ((0, 10), (0, 10), True),
        ((5, 5), (0, 10), False),
    ],
)
def test_spans_overlap(a: tuple[int, int], b: tuple[int, int], expected: bool) -> None:
    assert spans_overlap(a[0], a[1], b[0], b[1]) is expected


A1_ANSWER = [GoldSpan("a1", 50, 60)]


@pytest.mark.parametrize(
    ("retrieved", "answer_spans", "k", "expected"),
    [
        ([RetrievedSpan("a1", 0, 100)], A1_ANSWER, 1, 1.0),
        ([RetrievedSpan("a2", 0, 100)], A1_ANSWER, 1, 0.0),
        ([RetrievedSpan("a1", 55, 100)], A1_ANSWER, 1, 0.0),
        ([RetrievedSpan("a1", 0, 55), RetrievedSpan("a1", 40, 60)], A1_ANSWER, 2, 1.0),
        ([RetrievedSpan("a1", 0, 55), RetrievedSpan("a1", 40, 60)], A1_ANSWER, 1, 0.0),
        ([RetrievedSpan("a1", 0, 100)], A1_ANSWER, 0, 0.0),
        ([], A1_ANSWER, 5, 0.0),
        ([RetrievedSpan("a1", 0, 100)], [], 5, 0.0),
        (
            [RetrievedSpan("a2", 0, 10)],
            [GoldSpan("a1", 50, 60), GoldSpan("a2", 5, 8)],
            1,
            1.0,
        ),
        # The a2 chunk covers a1's offsets, but it is the wrong article; a2's span is outside.
        (
            [RetrievedSpan("a2", 0, 100)],
            [GoldSpan("a1", 50, 60), GoldSpan("a2", 200, 210)],
            1,
            0.0,
        ),
    ],
)
def test_passage_hit_at_k(
    retrieved: list[RetrievedSpan], answer_spans: list[GoldSpan], k: int, expected: float
) -> None:
    assert passage_hit_at_k(retrieved, answer_spans, k) == expected


GOLDS = ["Denver Broncos"]
GOLD_ARTICLES = {"a1"}
EVIDENCE = [GoldSpan("a1", 100, 200)]


@pytest.mark.parametrize(
    ("cited", "golds", "gold_article_ids", "evidence", "expected"),
    [
        ([("a9", "The Denver Broncos won.", 0, 50)], GOLDS, GOLD_ARTICLES, EVIDENCE, 1.0),
        ([("a1", "unrelated", 150, 250)], GOLDS, GOLD_ARTICLES, EVIDENCE, 1.0),
        ([("a1", "unrelated", 200, 300)], GOLDS, GOLD_ARTICLES, EVIDENCE, 0.0),
        ([("a2", "unrelated", 100, 200)], GOLDS, GOLD_ARTICLES, EVIDENCE, 0.0),
        ([("a1", "Broncos", 0, 10)], GOLDS, GOLD_ARTICLES, EVIDENCE, 0.0),
        (
            [
                ("a1", "x", 0, 100),  # touches the evidence span only: wrong
                ("a1", "x", 99, 101),  # overlaps it: right
                ("a3", "Broncos only", 0, 10),  # partial answer: wrong
                ("a3", "denver broncos!", 0, 10),  # holds the answer: right
            ],
            GOLDS,
            GOLD_ARTICLES,
            EVIDENCE,
            0.5,
        ),
        (
            [("a1", "x", 150, 160), ("a5", "y", 0, 1), ("a1", "z", 0, 5)],
            GOLDS,
            GOLD_ARTICLES,
            EVIDENCE,
            1 / 3,
        ),
        # Evidence of another gold article does not count for this one.
        ([("a2", "x", 100, 200)], GOLDS, {"a1", "a2"}, EVIDENCE, 0.0),
        # Evidence in an article that is not gold does not count.
        ([("a2", "x", 0, 10)], GOLDS, GOLD_ARTICLES, [GoldSpan("a2", 0, 10)], 0.0),
        ([("a1", "x", 150, 160)], [], GOLD_ARTICLES, EVIDENCE, 1.0),
        ([("a5", "anything", 0, 1)], [], GOLD_ARTICLES, EVIDENCE, 0.0),
        ([("a5", "anything", 0, 1)], [""], set(), [], 0.0),
        ([], GOLDS, GOLD_ARTICLES, EVIDENCE, None),
    ],
)
def test_citation_precision(
    cited: list[tuple[str, str, int, int]],
    golds: list[str],
    gold_article_ids: set[str],
    evidence: list[GoldSpan],
    expected: float | None,
) -> None:
    result = citation_precision(cited, golds, gold_article_ids, evidence)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        # position 4 * 0.95 = 3.8 -> 4 + 0.8 * (5 - 4)
        ([1.0, 2.0, 3.0, 4.0, 5.0], 95, 4.8),
        # position 3 * 0.95 = 2.85 -> 30 + 0.85 * 10
        ([10.0, 20.0, 30.0, 40.0], 95, 38.5),
        # sorted first: 1, 2, 3; position 2 * 0.95 = 1.9 -> 2 + 0.9
        ([3.0, 1.0, 2.0], 95, 2.9),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 25, 2.0),
        # position 3 * 0.9 = 2.7 -> 0.4 + 0.7 * 0.6
        ([0.1, 0.2, 0.4, 1.0], 90, 0.82),
        ([2.0, 2.0, 2.0, 10.0], 50, 2.0),
        # position 2.85 -> 2 + 0.85 * 8
        ([2.0, 2.0, 2.0, 10.0], 95, 8.8),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 100, 5.0),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "q"),
    [([], 50), ([1.0, 2.0], -1), ([1.0, 2.0], 100.5)],
)
def test_percentile_rejects_bad_input(values: Sequence[float], q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, q)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 2.5),
        ([1.0], 1.0),
        ([-1.0, 1.0], 0.0),
        ([0.1] * 10, 0.1),
        ([0.0, 1.0, 1.0], 2 / 3),
        ([], None),
    ],
)
def test_mean(values: list[float], expected: float | None) -> None:
    result = mean(values)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)

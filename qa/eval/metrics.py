"""Scoring for the evaluation harness: answer metrics (SQuAD-style normalisation, exact match,
token F1, answer containment), retrieval metrics (recall@k, reciprocal rank, passage hits on
character spans), citation precision and small summary statistics. Pure functions, standard
library only."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

_PUNCTUATION = frozenset(string.punctuation)
# Typographic quotes count as the ASCII ones they stand for ("Wendy\u2019s" is "Wendy's").
_QUOTES = str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")


@dataclass(frozen=True, slots=True)
class RetrievedSpan:
    """A retrieved chunk: the article it came from and its range `[start, end)` in that article."""

    article_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class GoldSpan:
    """A gold span (answer or evidence): its article and its range `[start, end)` in it."""

    article_id: str
    start: int
    end: int


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation (typographic quotes too), drop the
    articles a/an/the as whole words, and collapse runs of whitespace to single spaces
    (trimmed)."""
    lowered = text.lower().translate(_QUOTES)
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold, else 0.0 (0.0 if no golds)."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in golds))


def _f1_one(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    """Token F1 against one gold, as the official SQuAD script computes it."""
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1 (bag-of-tokens overlap of normalised text), the best over `golds`;
    0.0 when there are no golds. Against one gold, if either side has no tokens the score is
    1.0 when both have none and 0.0 otherwise."""
    prediction_tokens = normalize_answer(prediction).split()
    return max(
        (_f1_one(prediction_tokens, normalize_answer(gold).split()) for gold in golds),
        default=0.0,
    )


def plain_words(text: str) -> str:
    """`normalize_answer` after dropping accents ("Beyonce" is "Beyoncé") and the possessive
    "'s" ("George Washington's birthday" names "George Washington"): for containment, where
    SQuAD's exact match keeps both."""
    decomposed = unicodedata.normalize("NFKD", _POSSESSIVE.sub("", text))
    return normalize_answer("".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def answer_accuracy(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when some non-empty gold occurs in the prediction as a run of whole tokens, both
    normalised by `plain_words`, else 0.0."""
    padded = f" {plain_words(prediction)} "
    for gold in golds:
        normalised = plain_words(gold)
        if normalised and f" {normalised} " in padded:
            return 1.0
    return 0.0


def recall_at_k(ranked_article_ids: Sequence[str], gold_ids: Collection[str], k: int) -> float:
    """1.0 when any of the first `k` ranked ids (one per retrieved chunk; ids may repeat) is a
    gold id, else 0.0. A `k` of zero or less scores 0.0."""
    if k <= 0:
        return 0.0
    return float(any(article_id in gold_ids for article_id in ranked_article_ids[:k]))


def reciprocal_rank(
    ranked_article_ids: Sequence[str], gold_ids: Collection[str], k: int = 10
) -> float:
    """1/rank of the first gold id among the first `k` chunks (rank is the 1-based position in
    the chunk list, repeats included), or 0.0 when none of them is gold."""
    if k <= 0:
        return 0.0
    for rank, article_id in enumerate(ranked_article_ids[:k], start=1):
        if article_id in gold_ids:
            return 1.0 / rank
    return 0.0


def spans_contain(chunk_start: int, chunk_end: int, span_start: int, span_end: int) -> bool:
    """Whether the range `[chunk_start, chunk_end)` holds all of `[span_start, span_end)`."""
    return chunk_start <= span_start and span_end <= chunk_end


def spans_overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Whether half-open ranges `[a_start, a_end)` and `[b_start, b_end)` share a position;
    ranges that only touch (one ends where the other starts) and empty ranges do not."""
    return max(a_start, b_start) < min(a_end, b_end)


def passage_hit_at_k(
    retrieved: Sequence[RetrievedSpan], answer_spans: Sequence[GoldSpan], k: int
) -> float:
    """1.0 when one of the first `k` retrieved chunks comes from the article of some answer span
    and contains that span entirely, else 0.0."""
    if k <= 0:
        return 0.0
    return float(
        any(
            chunk.article_id == span.article_id
            and spans_contain(chunk.start, chunk.end, span.start, span.end)
            for chunk in retrieved[:k]
            for span in answer_spans
        )
    )


def _citation_correct(
    citation: tuple[str, str, int, int],
    golds: Sequence[str],
    gold_article_ids: Collection[str],
    evidence: Sequence[GoldSpan],
) -> bool:
    article_id, passage_text, start, end = citation
    if answer_accuracy(passage_text, golds) == 1.0:
        return True
    return article_id in gold_article_ids and any(
        span.article_id == article_id and spans_overlap(start, end, span.start, span.end)
        for span in evidence
    )


def citation_precision(
    cited: Sequence[tuple[str, str, int, int]],
    golds: Sequence[str],
    gold_article_ids: Collection[str],
    evidence: Sequence[GoldSpan],
) -> float | None:
    """Share of citations `(article_id, passage_text, start, end)` that are correct, or None when
    there are none. A citation is correct when its passage holds a gold answer as whole tokens
    (after normalisation), or it comes from a gold article and overlaps an evidence span of
    that article."""
    if not cited:
        return None
    correct = sum(_citation_correct(c, golds, gold_article_ids, evidence) for c in cited)
    return correct / len(cited)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0 <= q <= 100) by linear interpolation between closest ranks, as
    numpy's default "linear" method computes it. Raises ValueError on empty input or bad `q`."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None for an empty sequence."""
    if not values:
        return None
    return math.fsum(values) / len(values)

"""Checked citations: every sentence of a generated answer is matched against the passages, and
its `[n]` markers are kept, moved to the passage that does support it, or removed with the
sentence marked unsupported. Citations carry the supporting spans inside their passages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.citations import MARKER, find_markers
from qa.config import SUPPORT_THRESHOLD
from qa.evidence import Evidence, Support
from qa.text import content_words, sentence_spans, strip_markers
from qa.types import CheckedSentence, Citation, RetrievedChunk

_LEADING_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+")
_TRAILING_PUNCTUATION = re.compile(r"[.!?;:]+$")
_FILLER = frozenset({"yes", "no", "indeed"})


@dataclass(frozen=True, slots=True)
class CheckedAnswer:
    """An answer after the check: rewritten text, per-sentence verdicts and citations."""

    text: str
    sentences: tuple[CheckedSentence, ...]
    citations: tuple[Citation, ...]


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences without markers, each with the passage numbers it cites; markers
    written after a full stop ("... 1932. [2]") belong to the sentence before them."""
    claims: list[tuple[str, list[int]]] = []
    for start, end in sentence_spans(text):
        piece = text[start:end]
        leading = _LEADING_MARKERS.match(piece)
        if leading and claims:
            claims[-1][1].extend(
                n for n in find_markers(leading.group(0)) if n not in claims[-1][1]
            )
            piece = piece[leading.end() :]
        claim = " ".join(strip_markers(piece).split())
        claim = re.sub(r"\s+([.,;:!?])", r"\1", claim)
        if claim:
            claims.append((claim, find_markers(piece)))
        elif claims:
            claims[-1][1].extend(n for n in find_markers(piece) if n not in claims[-1][1])
    return claims


def needs_support(claim: str) -> bool:
    """False for sentences that state nothing checkable ("Yes.", "No."); a bare answer such as
    "Mexico [3]." is a claim like any other."""
    return bool(content_words(claim) - _FILLER)


def with_markers(claim: str, markers: Sequence[int]) -> str:
    """`claim` with `[n]` markers placed before its closing punctuation (after a closing quote:
    a quotation stays intact)."""
    if not markers:
        return claim
    tags = "".join(f"[{n}]" for n in markers)
    match = _TRAILING_PUNCTUATION.search(claim)
    if match:
        return f"{claim[: match.start()].rstrip()} {tags}{claim[match.start() :]}"
    return f"{claim} {tags}"


def verdict(
    cited: Sequence[int], supports: Sequence[Support], threshold: float
) -> tuple[list[Support], bool]:
    """The supports a claim keeps: its cited passages that back it; else the one passage that
    backs it best; else none (unsupported)."""
    valid = [supports[n - 1] for n in cited if 1 <= n <= len(supports)]
    kept = [s for s in valid if s.score >= threshold and s.numbers_agree]
    if kept:
        return kept, True
    best = max(supports, key=lambda s: s.score, default=None)
    if best is not None and best.score >= threshold and best.numbers_agree:
        return [best], True
    return [], False


def check_answer(
    text: str, evidence: Evidence, threshold: float = SUPPORT_THRESHOLD
) -> CheckedAnswer:
    """Check every sentence of `text` against the passages of `evidence`."""
    claims = split_claims(text)
    checkable = [i for i, (claim, _) in enumerate(claims) if needs_support(claim)]
    supports = evidence.supports([claims[i][0] for i in checkable])
    by_claim = dict(zip(checkable, supports, strict=True))
    sentences: list[CheckedSentence] = []
    spans: dict[int, list[tuple[int, int]]] = {}
    scores: dict[int, float] = {}
    for i, (claim, cited) in enumerate(claims):
        if i not in by_claim:
            sentences.append(CheckedSentence(claim, (), True, None))
            continue
        kept, supported = verdict(cited, by_claim[i], threshold)
        markers = tuple(s.passage for s in kept)
        for s in kept:
            spans.setdefault(s.passage, []).append((s.start, s.end))
            scores[s.passage] = max(scores.get(s.passage, 0.0), s.score)
        best = max((s.score for s in by_claim[i]), default=0.0)
        sentences.append(CheckedSentence(claim, markers, supported, best))
    rewritten = " ".join(with_markers(s.text, s.markers) for s in sentences)
    citations = tuple(
        make_citation(n, evidence.passages[n - 1], tuple(dict.fromkeys(spans[n])), scores[n])
        for n in sorted(spans, key=lambda n: _first_use(sentences, n))
    )
    return CheckedAnswer(rewritten, tuple(sentences), citations)


def _first_use(sentences: Sequence[CheckedSentence], number: int) -> int:
    return next(i for i, s in enumerate(sentences) if number in s.markers)


def make_citation(
    number: int, hit: RetrievedChunk, spans: tuple[tuple[int, int], ...], support: float
) -> Citation:
    """The citation of passage `number`, described from index metadata only."""
    chunk = hit.chunk
    return Citation(
        marker=number,
        article_id=chunk.article_id,
        title=chunk.title,
        source=chunk.source,
        url=chunk.url,
        published=chunk.published,
        passage=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=hit.score,
        spans=spans,
        support=support,
    )

"""Extractive answers: no model at all, the best supporting sentences quoted with their `[n]`.
The `extractive` backend, and the fallback when the configured model fails or times out."""

from __future__ import annotations

from qa.evidence import Evidence

# A second sentence is added only when it is nearly as relevant as the best one.
SECOND_SENTENCE_RATIO = 0.9


def extractive_text(evidence: Evidence, max_sentences: int = 2) -> str:
    """The most relevant sentences, in quotes, each followed by its passage marker."""
    ranked = evidence.ranked()
    if not ranked:
        return ""
    best = evidence.relevance[ranked[0]]
    picked = [ranked[0]]
    for i in ranked[1:max_sentences]:
        if evidence.relevance[i] >= SECOND_SENTENCE_RATIO * best:
            picked.append(i)
    return " ".join(
        f'"{evidence.sentences[i].text}" [{evidence.sentences[i].passage}]' for i in picked
    )

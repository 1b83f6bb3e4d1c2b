"""Evidence at sentence level: the sentences of the retrieved passages, how well each answers the
question, and how well each supports a claim of an answer.

One `Evidence` is built per question: passage sentences are embedded once and then serve the
"not covered" decision, the compact prompt, extractive answers and the citation check.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from index.embeddings import Embedder
from index.keyword import lucene_idf, word_terms
from qa.text import (
    Mentions,
    Name,
    content_words,
    coverage,
    instruction_flags,
    names,
    numbers,
    required_names,
    sentence_spans,
    strip_markers,
    words,
)
from qa.types import RetrievedChunk

Vectors = npt.NDArray[np.float32]
TermWeight = Callable[[str], float]

# How much of a sentence's relevance to a question comes from meaning (cosine) and how much from
# sharing the question's rarer words. Both were chosen on the SQuAD dev half (docs/evaluation.md).
COSINE_WEIGHT = 0.5
# When sentences are ranked for the prompt, each passage further down the retrieval ranking costs
# this much relevance: a tie goes to the better passage (SQuAD dev, two samples of 600: the gold
# answer reaches the prompt for 0.772 -> 0.782 and 0.783 -> 0.793 of questions).
RANK_PRIOR = 0.02
# Support from two neighbouring sentences must beat one sentence's by this much to be chosen.
PAIR_MARGIN = 0.05
# A name that one passage in fifty of the index mentions, and at least 100 passages, sets the
# archive's scene rather than a question's subject ("US", "White House", and "Delaware" in a
# Delaware paper's news): a passage backing an answer need not repeat it (RTQA 2024 dev,
# docs/evaluation.md). In a small archive one story's names fill a fiftieth of it.
SETTING_NAME_SHARE = 0.02
SETTING_NAME_PASSAGES = 100
# A question naming this many names or more is on a passage's subject when the passage mentions
# all of them but one.
MOST_NAMES_FROM = 3
# Words an answer frames its answer with ("The spacecraft is called Odysseus"): a passage that
# names the thing need not use them.
FRAMING_WORDS = frozenset({"called", "named", "known", "titled", "dubbed"})


@dataclass(frozen=True, slots=True)
class PassageSentence:
    """A sentence of retrieved passage `passage` (1-based, the `[n]` the model sees), located by
    character offsets in that passage's text."""

    passage: int
    start: int
    end: int
    text: str
    instruction: bool  # addresses a model, or carries links/images/blobs: never used as evidence


@dataclass(frozen=True, slots=True)
class Support:
    """How well a passage span backs a claim: `score` in [0, 1], and the span's offsets."""

    passage: int
    start: int
    end: int
    score: float
    numbers_agree: bool


class Evidence:
    """The sentences of the passages retrieved for one question, embedded once."""

    def __init__(
        self,
        embedder: Embedder,
        question: str,
        passages: Sequence[RetrievedChunk],
        weight: TermWeight | None = None,
        question_vector: Sequence[float] | None = None,
        setting: float | None = None,
    ) -> None:
        """`weight` tells how rare a word is in the index (BM25's inverse document frequency);
        a name whose words all weigh at most `setting` (`setting_weight`) sets the archive's
        scene and need not be repeated by a passage. Without them every name counts."""
        self.embedder = embedder
        self.question = question
        self.passages = tuple(passages)
        self._setting_weight = setting if weight is not None else None
        self.weight = weight or (lambda _term: 1.0)
        self.sentences = tuple(split_passages(self.passages))
        texts = [s.text for s in self.sentences]
        # The question's vector comes from retrieval when it has one: embedded once.
        asked = [] if question_vector is not None else [question]
        vectors = embedder.embed_documents([*asked, *texts]) if texts else []
        matrix = np.asarray(vectors, dtype=np.float32).reshape(-1, embedder.dimension)
        self.vectors: Vectors = matrix[len(asked) :]
        if not texts:
            self.question_vector = np.zeros(embedder.dimension, np.float32)
        elif question_vector is not None:
            self.question_vector = np.asarray(question_vector, dtype=np.float32)
        else:
            self.question_vector = matrix[0]
        self._words = [content_words(s.text) for s in self.sentences]
        self._question_words = content_words(question)
        self._question_numbers = numbers(question)
        self._question_tokens = set(words(question))
        self.relevance = self._relevance()
        # What each passage (with its article's title) mentions, for the names a claim needs.
        self._mentioned = [Mentions.of(f"{p.chunk.title}\n{p.chunk.text}") for p in self.passages]

    def _relevance(self) -> list[float]:
        """Each sentence's relevance to the question: cosine blended with weighted coverage of
        the question's content words. Instruction-like sentences score 0."""
        if not self.sentences:
            return []
        cosines = self.vectors @ self.question_vector
        wanted = self._question_words
        total = sum(self.weight(w) for w in wanted) or 1.0
        scores = []
        for sentence, have, cosine in zip(self.sentences, self._words, cosines, strict=True):
            if sentence.instruction:
                scores.append(0.0)
                continue
            covered = sum(self.weight(w) for w in wanted & have) / total
            scores.append(COSINE_WEIGHT * float(cosine) + (1 - COSINE_WEIGHT) * covered)
        return scores

    @property
    def best_relevance(self) -> float:
        """The relevance of the best sentence: what the "not covered" decision looks at."""
        return max(self.relevance, default=0.0)

    def span_relevance(self, passage: int, start: int, end: int) -> float:
        """The best relevance to the question among the sentences of `passage` inside a span."""
        return max(
            (
                score
                for sentence, score in zip(self.sentences, self.relevance, strict=True)
                if sentence.passage == passage and start <= sentence.start < end
            ),
            default=0.0,
        )

    def ranked(self) -> list[int]:
        """Indexes of the usable sentences, most relevant first (a passage ranked lower by
        retrieval gives way on a near tie, `RANK_PRIOR`)."""

        def priority(i: int) -> float:
            return self.relevance[i] - RANK_PRIOR * (self.sentences[i].passage - 1)

        order = sorted(range(len(self.sentences)), key=lambda i: -priority(i))
        return [i for i in order if not self.sentences[i].instruction]

    def select(self, budget: int, count_tokens: Callable[[str], int]) -> dict[int, list[int]]:
        """The most relevant sentences that fit in `budget` tokens, grouped by passage number and
        kept in reading order, each text once: what the compact prompt shows the model."""
        chosen: dict[int, list[int]] = {}
        seen: set[str] = set()  # overlapping chunks repeat sentences: show each one once
        used = 0
        for i in self.ranked():
            text = " ".join(self.sentences[i].text.split()).lower()
            if text in seen:
                continue
            seen.add(text)
            cost = count_tokens(self.sentences[i].text) + 1
            if used + cost > budget and chosen:
                continue
            chosen.setdefault(self.sentences[i].passage, []).append(i)
            used += cost
            if used >= budget:
                break
        return {p: sorted(ids) for p, ids in sorted(chosen.items())}

    def supports(self, claims: Sequence[str]) -> list[list[Support]]:
        """For each claim, the support every passage gives it (index `n - 1` for passage `n`).
        A passage backs nothing of a claim when it and its title never mention a name of the
        question the claim needs (`required_names`): it is about something else."""
        cleaned = [strip_markers(c).strip() for c in claims]
        if not cleaned or not self.sentences:
            return [[] for _ in cleaned]
        claim_vectors = np.asarray(
            self.embedder.embed_documents(cleaned), dtype=np.float32
        ).reshape(len(cleaned), -1)
        cosines = claim_vectors @ self.vectors.T
        found = []
        for c, claim in enumerate(cleaned):
            required = [n for n in required_names(self.question, claim) if not self._setting(n)]
            found.append(
                [
                    self._support(claim, cosines[c], p)
                    if self._about(p, required)
                    else Support(p, 0, 0, 0.0, False)  # about something else than asked
                    for p in range(1, len(self.passages) + 1)
                ]
            )
        return found

    def _about(self, passage: int, required: Sequence[Name]) -> bool:
        """Whether passage `passage` (with its title) mentions the `required` names: all of them,
        or all but one of three or more (a passage on Disney and "The Mandalorian" is on the
        question's subject without saying "TV")."""
        missing = sum(not self._mentioned[passage - 1].run(name) for name in required)
        return missing == 0 or (missing == 1 and len(required) >= MOST_NAMES_FROM)

    def _setting(self, name: Name) -> bool:
        """Whether the index mentions every word of `name` so often that it only sets the scene
        (`setting_weight`)."""
        limit = self._setting_weight
        if limit is None:
            return False
        terms = [term for word in name for term in word_terms(word)]
        return bool(terms) and all(self.weight(term) <= limit for term in terms)

    def _support(self, claim: str, cosines: Vectors, passage: int) -> Support:
        """The best span of passage `passage` (one sentence or two neighbours) for `claim`: by
        the claim's meaning and words, or by how well the span answers the question and holds
        what the claim adds to it (a claim often restates the question around its answer)."""
        members = [
            i for i, s in enumerate(self.sentences) if s.passage == passage and not s.instruction
        ]
        wanted = content_words(claim)
        # What the claim adds to the question: the words that must come from the passage when
        # the rest of the claim only restates the question ("X is being accused of ...").
        added = wanted - self._question_words - FRAMING_WORDS
        title = self.passages[passage - 1].chunk.title
        title_words = content_words(title)
        best = Support(passage, 0, 0, 0.0, False)
        claim_numbers = numbers(claim)
        claim_names = names(claim)
        singles = [[i] for i in members]
        pairs = [[i, j] for i, j in itertools.pairwise(members) if j == i + 1]
        for window in singles + pairs:
            # Two sentences count only when together they back the claim clearly better.
            margin = PAIR_MARGIN if len(window) > 1 else 0.0
            text = " ".join(self.sentences[j].text for j in window)
            # The article's title counts as context of every span of it (citations show it).
            have = title_words.union(*(self._words[j] for j in window))
            cosine = max(float(cosines[j]) for j in window)
            span_numbers = numbers(f"{title} {text}")
            span_words = set(words(f"{title} {text}"))
            agree = claim_numbers <= span_numbers
            named = coverage(claim_names, span_words)
            score = support_score(cosine, coverage(wanted, have), agree, named)
            if added:
                # The question's own numbers and names need not be repeated by the span.
                answers = max(self.relevance[j] for j in window)
                agrees = claim_numbers - self._question_numbers <= span_numbers
                restated = support_score(
                    answers,
                    coverage(added, have),
                    agrees,
                    coverage(claim_names - self._question_tokens, span_words),
                )
                if restated > score:
                    score, agree = restated, agrees
            if score > best.score + margin:
                first, last = self.sentences[window[0]], self.sentences[window[-1]]
                best = Support(passage, first.start, last.end, score, agree)
        return best


def support_score(cosine: float, word_coverage: float, numbers_agree: bool, names: float) -> float:
    """How well a span backs a claim, in [0, 1]: meaning and shared words, with every number of
    the claim required in the span and its names expected there."""
    score = 0.5 * max(0.0, cosine) + 0.5 * word_coverage
    if not numbers_agree:
        score *= 0.5
    return score * (0.75 + 0.25 * names)


def setting_weight(passages: int) -> float | None:
    """The keyword weight at or under which a word sets the scene of an index of `passages`
    passages: that of a word `SETTING_NAME_SHARE` of them mention, and at least
    `SETTING_NAME_PASSAGES`; None when the index is smaller than that."""
    mentions = max(math.ceil(SETTING_NAME_SHARE * passages), SETTING_NAME_PASSAGES)
    return lucene_idf(mentions, passages) if mentions <= passages else None


def split_passages(passages: Sequence[RetrievedChunk]) -> list[PassageSentence]:
    """Every sentence of every passage, in order, flagged when it looks like an instruction."""
    found = []
    for number, hit in enumerate(passages, start=1):
        text = hit.chunk.text
        spans = sentence_spans(text)
        for (start, end), instruction in zip(spans, instruction_flags(text, spans), strict=True):
            found.append(PassageSentence(number, start, end, text[start:end], instruction))
    return found

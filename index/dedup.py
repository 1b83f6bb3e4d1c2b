"""Near-duplicate articles: the same story syndicated by several outlets is indexed once.

Each article's text is normalised (wire boilerplate such as bylines, datelines and "Reporting by"
lines dropped, case and punctuation folded) and cut into word 5-shingles. MinHash signatures in an
LSH index (datasketch) propose candidate pairs cheaply; each candidate is then confirmed with the
exact Jaccard similarity of the two shingle sets, so the outcome does not depend on hashing luck.
Two articles are duplicates when that Jaccard similarity is at least `DEFAULT_THRESHOLD` (0.8).

Articles are visited in a fixed preference order (earliest published, then longest text, then
smallest id); each is kept unless it duplicates an article already kept, so the same input always
keeps the same article and every dropped copy is at least `threshold` similar to the one kept.
`merge_duplicates` applies this to articles: each kept one lists its dropped copies' sources.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from index.types import Article, Duplicate

if TYPE_CHECKING:
    import numpy as np

SHINGLE_WORDS = 5
DEFAULT_THRESHOLD = 0.8
# The LSH index proposes pairs well below the threshold; exact Jaccard decides. Lower means fewer
# missed pairs and more exact comparisons.
LSH_THRESHOLD = 0.5
NUM_PERM = 128
_MULTIPLIER = 0x100000001B3  # the 64-bit FNV prime

_WORD = re.compile(r"\w+")
# "By Jane Doe", "BY J. DOE AND JOHN ROE, Reuters", "Jane Doe, Associated Press" on one line (a
# sentence such as "By Friday, the port had reopened." ends with a full stop and is kept).
_BYLINE = re.compile(
    r"^(?:By|BY)\s+[A-Z][^\n!?]{0,60}(?<!\.)$"
    r"|^[A-Z][\w.'\-]*(?:\s+[A-Z][\w.'\-]*){0,4},\s*(?:Reuters|Associated Press|AFP|AP|Xinhua|dpa)$"
)
# "Reporting by ...", "Editing by ...", "Writing by ...", "(Additional reporting by ...)".
_CREDIT = re.compile(
    r"^\(?\s*(?:additional\s+)?(?:reporting|writing|editing|compiled|produced)\s+by\b.*$",
    re.IGNORECASE,
)
# "LINDHOLM, May 2 (Reuters) - ", "LINDHOLM (AP) — ", "BRUSSELS -- " at the start of the body.
_DATELINE = re.compile(
    r"\A[A-Z][A-Z .'\-]{1,40}(?:,\s*[A-Z][a-z]{2,9}\.?\s+\d{1,2})?"
    r"(?:\s*\([A-Za-z .]{1,30}\))?\s*(?:-{1,2}|\u2013|\u2014|:)\s+"
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What deduplication needs to know about one article."""

    key: str  # unique among the candidates (for example the position in the input)
    text: str
    published: str | None
    article_id: str


@dataclass(frozen=True, slots=True)
class Match:
    """A dropped copy (`key`) and the kept candidate it duplicates (`kept_key`)."""

    key: str
    kept_key: str
    similarity: float  # exact Jaccard similarity of the two shingle sets


def strip_wire_boilerplate(text: str) -> str:
    """The text without byline lines, a leading dateline and trailing credit lines."""
    lines = [line.strip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    while lines and (_BYLINE.match(lines[0]) or _CREDIT.match(lines[0])):
        lines.pop(0)
    while lines and (_CREDIT.match(lines[-1]) or _BYLINE.match(lines[-1])):
        lines.pop()
    lines = [line for line in lines if not _CREDIT.match(line)]
    if lines:
        lines[0] = _DATELINE.sub("", lines[0], count=1)
    return "\n".join(lines)


def normalize_words(text: str) -> list[str]:
    """Lower-case words of the text (Unicode NFKC), boilerplate removed, punctuation dropped."""
    folded = unicodedata.normalize("NFKC", strip_wire_boilerplate(text)).casefold()
    return _WORD.findall(folded)


def shingle_set(words: Sequence[str], size: int = SHINGLE_WORDS) -> frozenset[int]:
    """Stable 64-bit hashes of the `size`-word shingles; a shorter text is one shingle."""
    return frozenset(_shingle_hashes(words, size).tolist())


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Shared shingles over all shingles of the two sets; 0.0 when both are empty."""
    shared = len(a & b)
    union = len(a) + len(b) - shared
    return shared / union if union else 0.0


def preference_key(candidate: Candidate) -> tuple[int, str, int, str]:
    """Order of preference: earliest published (undated last), longest text, smallest id."""
    return (
        0 if candidate.published else 1,
        candidate.published or "",
        -len(candidate.text),
        candidate.article_id,
    )


def find_duplicates(
    candidates: Sequence[Candidate], *, threshold: float = DEFAULT_THRESHOLD
) -> list[Match]:
    """Every candidate that duplicates a kept one, in input order; deterministic for any order."""
    from datasketch import MinHash, MinHashLSH

    hashes = [_shingle_hashes(normalize_words(c.text), SHINGLE_WORDS) for c in candidates]
    shingles = {c.key: frozenset(h.tolist()) for c, h in zip(candidates, hashes, strict=True)}
    signatures = dict(
        zip(
            (c.key for c in candidates),
            MinHash.generator(
                ((h & 0xFFFFFFFF).tolist() for h in hashes),
                num_perm=NUM_PERM,
                seed=1,
                hashfunc=int,
                scheme="affine32",
            ),
            strict=True,
        )
    )
    lsh = MinHashLSH(threshold=min(LSH_THRESHOLD, threshold), num_perm=NUM_PERM)
    matches: dict[str, Match] = {}
    for candidate in sorted(candidates, key=lambda c: (preference_key(c), c.key)):
        own = shingles[candidate.key]
        if not own:  # no words at all: nothing to compare, keep it
            continue
        signature = signatures[candidate.key]
        best: Match | None = None
        for other in sorted(str(k) for k in lsh.query(signature)):
            similarity = jaccard(own, shingles[other])
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = Match(candidate.key, other, similarity)
        if best is None:
            lsh.insert(candidate.key, signature)
        else:
            matches[candidate.key] = best
    return [matches[c.key] for c in candidates if c.key in matches]


def _shingle_hashes(words: Sequence[str], size: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """A polynomial hash of each run of `size` words, from stable per-word hashes (wrapping)."""
    import numpy as np

    if not words:
        return np.zeros(0, dtype=np.uint64)
    size = min(size, len(words))
    # Word ids from a dict, not `np.unique`: a numpy string array is as wide as the longest
    # word, so one 100,000-character "word" in a long article asked for over 100 GiB.
    ids: dict[str, int] = {}
    positions = np.fromiter((ids.setdefault(w, len(ids)) for w in words), np.int64, len(words))
    word_hashes = np.fromiter(map(_word_hash, ids), np.uint64, len(ids))[positions]
    count = len(words) - size + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(size):
        combined = combined * np.uint64(_MULTIPLIER) + word_hashes[offset : offset + count]
    return combined


@functools.lru_cache(maxsize=1 << 18)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big")


def merge_duplicates(
    articles: Sequence[Article], *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[tuple[Article, ...], tuple[Duplicate, ...]]:
    """The unique articles, in input order, each listing its dropped copies; and the copies."""
    candidates = [
        Candidate(key=str(i), text=a.text, published=a.published, article_id=a.id)
        for i, a in enumerate(articles)
    ]
    matches = find_duplicates(candidates, threshold=threshold)
    merged: dict[int, list[str]] = {}
    duplicates = []
    for match in matches:
        copy, kept = articles[int(match.key)], articles[int(match.kept_key)]
        labels = merged.setdefault(int(match.kept_key), list(kept.other_sources))
        for label in (source_label(copy), *copy.other_sources):
            if label != source_label(kept) and label not in labels:
                labels.append(label)
        duplicates.append(Duplicate(copy.origin, kept.id, round(match.similarity, 4)))
    dropped = {int(m.key) for m in matches}
    unique = tuple(
        replace(a, other_sources=tuple(merged[i])) if i in merged else a
        for i, a in enumerate(articles)
        if i not in dropped
    )
    return unique, tuple(duplicates)


def source_label(article: Article) -> str:
    """How a copy is named in `other_sources`: "Outlet <url>", either part alone, or its origin."""
    parts = [article.source or "", f"<{article.url}>" if article.url else ""]
    return " ".join(p for p in parts if p) or article.origin

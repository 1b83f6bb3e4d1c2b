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
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
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
# The signature of a text without words (never compared): values no real signature has.
EMPTY_SIGNATURE = (1 << 32) - 1
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
    candidates: Sequence[Candidate],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    signatures: SignatureCache | None = None,
) -> list[Match]:
    """Every candidate that duplicates a kept one, in input order; deterministic for any order.

    `signatures` keeps each text's MinHash signature between runs (a sync reads every source
    again; only new texts are hashed). Band buckets as datasketch's `MinHashLSH` makes them, grouped
    at once with numpy, propose the pairs; the exact Jaccard similarity decides."""
    import numpy as np

    cache = signatures if signatures is not None else SignatureCache()
    matrix = cache.signatures([c.text for c in candidates])
    mates = _band_mates(matrix, min(LSH_THRESHOLD, threshold))
    shingles: dict[int, frozenset[int]] = {}

    def shingles_of(row: int) -> frozenset[int]:
        if row not in shingles:
            words = normalize_words(candidates[row].text)
            shingles[row] = frozenset(_shingle_hashes(words, SHINGLE_WORDS).tolist())
        return shingles[row]

    empty = np.all(matrix == EMPTY_SIGNATURE, axis=1)
    kept: set[int] = set()
    matches: dict[int, Match] = {}
    order = sorted(
        range(len(candidates)), key=lambda i: (preference_key(candidates[i]), candidates[i].key)
    )
    for row in order:
        if empty[row]:  # no words at all: nothing to compare, keep it
            continue
        best: Match | None = None
        for other in sorted(
            (o for o in mates.get(row, ()) if o in kept), key=lambda o: candidates[o].key
        ):
            similarity = jaccard(shingles_of(row), shingles_of(other))
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = Match(candidates[row].key, candidates[other].key, similarity)
        if best is None:
            kept.add(row)
        else:
            matches[row] = best
    return [matches[i] for i in range(len(candidates)) if i in matches]


def _band_mates(matrix: Any, threshold: float) -> dict[int, set[int]]:
    """For each row, the other rows whose signatures agree on at least one band: the pairs an
    LSH index with these bands proposes."""
    import numpy as np
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    mates: dict[int, set[int]] = {}
    for begin, end in lsh.hashranges:
        band = np.ascontiguousarray(matrix[:, begin:end])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * (end - begin)))).ravel()
        _, groups, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[groups] > 1
        rows = np.flatnonzero(shared)
        by_group: dict[int, list[int]] = {}
        for row, group in zip(rows.tolist(), groups[shared].tolist(), strict=True):
            by_group.setdefault(group, []).append(row)
        for members in by_group.values():
            for row in members:
                mates.setdefault(row, set()).update(members)
    for row, others in mates.items():
        others.discard(row)
    return mates


class SignatureCache:
    """The MinHash signature of each text, by a digest of the text: kept on disk between runs
    (`load`, `save`), so that reading an archive again hashes only the texts new to it."""

    def __init__(self, known: Mapping[bytes, Any] | None = None) -> None:
        self._known: dict[bytes, Any] = dict(known or {})
        self._loaded = len(self._known)
        self._used: dict[bytes, Any] = {}

    @property
    def changed(self) -> bool:
        """Whether `save` would write other signatures than were loaded."""
        return len(self._known) != self._loaded or len(self._used) != self._loaded

    def signatures(self, texts: Sequence[str]) -> Any:
        """One row of `NUM_PERM` values per text (`EMPTY_SIGNATURE` for a text without words)."""
        import numpy as np

        digests = [
            hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            for t in texts
        ]
        missing = {d: t for d, t in zip(digests, texts, strict=True) if d not in self._known}
        if missing:
            self._known.update(zip(missing, _minhash([*missing.values()]), strict=True))
        matrix = np.empty((len(texts), NUM_PERM), dtype=np.uint64)
        for row, digest in enumerate(digests):
            matrix[row] = self._used[digest] = self._known[digest]
        return matrix

    @classmethod
    def load(cls, path: Path) -> SignatureCache:
        """The signatures saved at `path`; none when it is missing or unreadable (a cache)."""
        import numpy as np

        try:
            with np.load(path) as saved:
                digests, values = saved["digests"], saved["signatures"]
            if values.shape != (len(digests), NUM_PERM):
                return cls()
            return cls(
                {bytes(d): v.astype(np.uint64) for d, v in zip(digests, values, strict=True)}
            )
        except (OSError, ValueError, KeyError, EOFError):
            return cls()

    def save(self, path: Path) -> None:
        """Keep the signatures of the texts asked for since loading (written beside, renamed)."""
        import numpy as np

        digests = np.array(list(self._used), dtype="S16")
        values = np.array(list(self._used.values()), dtype=np.uint32).reshape(-1, NUM_PERM)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(temporary, digests=digests, signatures=values)
        os.replace(temporary, path)


def _minhash(texts: Sequence[str]) -> list[Any]:
    """The signatures of `texts`, as datasketch computes them (affine hashing of the lower 32 bits
    of each shingle hash, seed 1)."""
    import numpy as np
    from datasketch import MinHash

    hashes = [_shingle_hashes(normalize_words(t), SHINGLE_WORDS) for t in texts]
    generated = MinHash.generator(
        ((h & 0xFFFFFFFF).tolist() for h in hashes),
        num_perm=NUM_PERM,
        seed=1,
        hashfunc=int,
        scheme="affine32",
    )
    empty = np.full(NUM_PERM, EMPTY_SIGNATURE, dtype=np.uint64)
    return [
        signature.hashvalues if len(h) else empty
        for signature, h in zip(generated, hashes, strict=True)
    ]


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
    articles: Sequence[Article],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    signatures: SignatureCache | None = None,
) -> tuple[tuple[Article, ...], tuple[Duplicate, ...]]:
    """The unique articles, in input order, each listing its dropped copies; and the copies."""
    candidates = [
        Candidate(key=str(i), text=a.text, published=a.published, article_id=a.id)
        for i, a in enumerate(articles)
    ]
    matches = find_duplicates(candidates, threshold=threshold, signatures=signatures)
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

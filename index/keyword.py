"""The keyword index: BM25 over the same chunks as the Chroma collection (the only bm25s user).

Each build keeps its own beside its vectors (`<build>/keyword/`, see `index.layout`), written by the
same build code before the build goes live. A reader's `KeywordIndex` can `follow` a newer build's
index in place, so whoever holds it searches the new build without being handed a new object.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.chunking import searchable_text
from index.layout import damaged
from index.types import Chunk, DayRange, day_number

if TYPE_CHECKING:
    from bm25s import BM25

STOPWORDS = "en"


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A chunk found by keywords, with its BM25 score."""

    chunk_id: str
    article_id: str
    score: float


@dataclass(frozen=True, slots=True)
class _KeywordState:
    model: BM25
    chunk_ids: list[str]
    article_ids: list[str]
    articles: Any  # numpy array of article_ids, for exclusion masks
    ids: Any  # numpy array of chunk_ids, for the ids within a range of days
    days: Any  # numpy array of publication days (YYYYMMDD, 0 unknown), or None (an older build)


class KeywordIndex:
    """BM25 over chunk texts; `search` returns chunk ids, best first."""

    def __init__(
        self,
        model: BM25,
        chunk_ids: list[str],
        article_ids: list[str],
        days: list[int] | None = None,
    ) -> None:
        day_array = None if days is None else np.asarray(days, dtype=np.int64)
        self._state = _KeywordState(
            model,
            chunk_ids,
            article_ids,
            np.asarray(article_ids),
            np.asarray(chunk_ids, dtype=object),
            day_array,
        )

    @property
    def _model(self) -> BM25:
        return self._state.model

    @property
    def chunk_ids(self) -> list[str]:
        return self._state.chunk_ids

    @property
    def article_ids(self) -> list[str]:
        return self._state.article_ids

    @property
    def days(self) -> list[int] | None:
        return None if self._state.days is None else [int(d) for d in self._state.days]

    def ids_within(self, days: DayRange) -> list[str] | None:
        """The ids of the chunks published within `days` (None for a build that does not know
        its days): what a vector search is then limited to."""
        state = self._state
        if state.days is None:
            return None
        keep = state.days >= days.lowest
        if days.last is not None:
            keep &= state.days <= days.last
        chosen: list[str] = state.ids[keep].tolist()
        return chosen

    @property
    def days_indexed(self) -> bool:
        """Whether a search can keep a range of publication days (builds before it could not)."""
        return self._state.days is not None

    def follow(self, other: KeywordIndex) -> None:
        """Answer as `other` from now on (one assignment: a search sees one or the other)."""
        self._state = other._state

    def save_model(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def term_weight(self, term: str) -> float:
        """How rare a (lower-cased) word is among the chunks: BM25's inverse document frequency,
        the highest for a word no chunk has."""
        index = self._model.vocab_dict.get(term)
        pointers = self._model.scores["indptr"]
        frequency = 0 if index is None else int(pointers[index + 1] - pointers[index])
        total = len(self.chunk_ids)
        return math.log(1 + (total - frequency + 0.5) / (frequency + 0.5))

    def search(
        self,
        query: str,
        k: int,
        exclude_articles: Collection[str] = (),
        days: DayRange | None = None,
    ) -> list[KeywordHit]:
        """The best `k` chunks for `query` with a score above zero, leaving out some articles
        and, when `days` is bounded (and the build knows its days), chunks published outside it."""
        state = self._state
        vocab: dict[str, int] = state.model.vocab_dict
        tokens = [t for t in tokenize([query])[0] if t in vocab]
        if not tokens or k <= 0 or not state.chunk_ids:
            return []
        keep = np.ones(len(state.chunk_ids), dtype=bool)
        if exclude_articles:
            keep &= ~np.isin(state.articles, list(exclude_articles))
        if days is not None and days.bounded and state.days is not None:
            keep &= state.days >= days.lowest
            if days.last is not None:
                keep &= state.days <= days.last
        mask = None if keep.all() else keep.astype(np.float32)
        documents, scores = state.model.retrieve(
            [tokens], k=min(k, len(state.chunk_ids)), show_progress=False, weight_mask=mask
        )
        return [
            KeywordHit(state.chunk_ids[int(d)], state.article_ids[int(d)], float(s))
            for d, s in zip(documents[0], scores[0], strict=True)
            if s > 0
        ]


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stop words, as BM25 indexes them."""
    import bm25s

    result = bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)
    return [list(tokens) for tokens in result]


def build_keyword_index(chunks: Sequence[Chunk], with_titles: bool = False) -> KeywordIndex:
    """A BM25 index of `chunks` (their text, after their title if `with_titles`)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    model = bm25s.BM25()
    model.index(tokenize([searchable_text(c, with_titles) for c in chunks]), show_progress=False)
    return KeywordIndex(
        model,
        [c.id for c in chunks],
        [c.article_id for c in chunks],
        [day_number(c.published) or 0 for c in chunks],
    )


def save_keyword_index(keyword: KeywordIndex, directory: Path) -> None:
    """Write the index into `directory` (a build's own folder, not yet read by anyone)."""
    directory.mkdir(parents=True, exist_ok=True)
    keyword.save_model(directory)
    (directory / "chunks.json").write_text(
        json.dumps(
            {
                "chunk_ids": keyword.chunk_ids,
                "article_ids": keyword.article_ids,
                "days": keyword.days,
            }
        ),
        encoding="utf-8",
    )


def load_keyword_index(directory: Path, expected_chunks: int) -> KeywordIndex:
    """The index saved in `directory`; `IndexDamagedError` if it is missing, damaged or out of
    step with the vector index's `expected_chunks`."""
    import bm25s

    try:
        ids = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        model = bm25s.BM25.load(str(directory), show_progress=False)
        days = ids.get("days")  # absent in builds written before days were indexed
        keyword = KeywordIndex(
            model,
            list(ids["chunk_ids"]),
            list(ids["article_ids"]),
            None if days is None else [int(d) for d in days],
        )
        documents = int(model.scores["num_docs"])
    except FileNotFoundError as e:
        raise damaged(f"The keyword index at {directory} is missing") from e
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        raise damaged(
            f"The keyword index at {directory} is damaged ({e.__class__.__name__})"
        ) from e
    if (
        documents != len(keyword)
        or len(keyword.article_ids) != len(keyword)
        or (days is not None and len(days) != len(keyword))
    ):
        raise damaged(f"The keyword index at {directory} is damaged (inconsistent files)")
    if len(keyword) != expected_chunks:
        raise damaged(
            f"The keyword index has {len(keyword)} chunks but the vector index has "
            f"{expected_chunks}"
        )
    return keyword

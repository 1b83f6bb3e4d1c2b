"""The keyword index: BM25 over the same chunks as the Chroma collection (the only bm25s user).

Each build keeps its own beside its vectors (`<build>/keyword/`, see `index.layout`), written by the
same build code before the build goes live. A reader's `KeywordIndex` can `follow` a newer build's
index in place, so whoever holds it searches the new build without being handed a new object.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.chunking import searchable_text
from index.layout import damaged
from index.types import Chunk, DayRange, day_number

if TYPE_CHECKING:
    from bm25s import BM25

STOPWORDS = "en"
PARAMETERS = "params.index.json"  # bm25s's parameters file, which holds the chunk count
_TERM = re.compile(r"\w\w+")  # bm25s's default token pattern, r"(?u)\b\w\w+\b"


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A chunk found by keywords, with its BM25 score."""

    chunk_id: str
    article_id: str
    score: float


@dataclass(frozen=True, slots=True)
class _Layer:
    """One build's BM25 index, and which of its chunks are still in the index."""

    model: BM25 | None  # None for a build with no chunks of its own (a sync that only removed)
    chunk_ids: list[str]
    article_ids: list[str]
    articles: Any  # numpy array of article_ids, for exclusion masks
    ids: Any  # numpy array of chunk_ids, for the ids within a range of days
    days: Any  # numpy array of publication days (YYYYMMDD, 0 unknown), or None (an older build)
    shown: Any  # numpy bool array, False for chunks a later build hid; None: none hidden

    @property
    def visible(self) -> int:
        return len(self.chunk_ids) if self.shown is None else int(self.shown.sum())

    def frequency(self, term: str) -> int:
        """How many of the layer's chunks hold `term` (hidden ones included, as in Lucene)."""
        index = self.vocabulary.get(term)
        if self.model is None or index is None:
            return 0
        pointers = self.model.scores["indptr"]
        return int(pointers[index + 1] - pointers[index])

    @property
    def vocabulary(self) -> dict[str, int]:
        return {} if self.model is None else self.model.vocab_dict

    def keep(self, exclude_articles: Collection[str], days: DayRange | None) -> Any:
        """The rows a search may return: shown, not excluded, within `days` when bounded."""
        keep = np.ones(len(self.chunk_ids), dtype=bool) if self.shown is None else self.shown.copy()
        if exclude_articles:
            keep &= ~np.isin(self.articles, list(exclude_articles))
        if days is not None and days.bounded and self.days is not None:
            keep &= self.days >= days.lowest
            if days.last is not None:
                keep &= self.days <= days.last
        return keep

    def scores(self, tokens: Sequence[str], weights: Mapping[str, float]) -> Any:
        """Each chunk's BM25 score for `tokens`, each term's stored score times its weight."""
        scores = np.zeros(len(self.chunk_ids), dtype=np.float32)
        if self.model is None:
            return scores
        data = self.model.scores["data"]
        indices = self.model.scores["indices"]
        pointers = self.model.scores["indptr"]
        for token in tokens:
            index = self.model.vocab_dict.get(token)
            if index is None:
                continue
            begin, end = int(pointers[index]), int(pointers[index + 1])
            # A term's postings name each chunk once, so this adds without collisions.
            scores[indices[begin:end]] += np.float32(weights[token]) * data[begin:end]
        return scores


def _layer(
    model: BM25 | None, chunk_ids: list[str], article_ids: list[str], days: list[int] | None
) -> _Layer:
    return _Layer(
        model,
        chunk_ids,
        article_ids,
        np.asarray(article_ids, dtype=object),  # not fixed-width: 4 bytes a letter a chunk
        np.asarray(chunk_ids, dtype=object),
        None if days is None else np.asarray(days, dtype=np.int64),
        None,
    )


def lucene_idf(frequency: int, documents: int) -> float:
    """BM25's inverse document frequency as bm25s computes it (its default, Lucene's)."""
    return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))


class KeywordIndex:
    """BM25 over chunk texts; `search` returns chunk ids, best first.

    An index can stack several builds' indexes (`stacked`): a build written by a sync holds only
    the changed chunks and reads the rest from earlier builds. Each layer's stored scores are
    rescaled to term weights computed over all layers together, so a chunk scores as it would in
    one index of them all (up to the document lengths' average, which each layer keeps)."""

    def __init__(
        self,
        model: BM25 | None,
        chunk_ids: list[str],
        article_ids: list[str],
        days: list[int] | None = None,
    ) -> None:
        self._layers: tuple[_Layer, ...] = (_layer(model, chunk_ids, article_ids, days),)

    @classmethod
    def stacked(cls, parts: Sequence[tuple[KeywordIndex, Collection[str]]]) -> KeywordIndex:
        """One index over `parts`, each a single build's index and the chunk ids hidden in it."""
        layers: list[_Layer] = []
        for index, hidden in parts:
            for layer in index._layers:
                shown = None
                if hidden:  # a set lookup per chunk: faster than np.isin on strings
                    wanted = frozenset(hidden)
                    count = len(layer.chunk_ids)
                    shown = np.fromiter((i not in wanted for i in layer.chunk_ids), bool, count)
                layers.append(replace(layer, shown=shown))
        stacked = cls.__new__(cls)
        stacked._layers = tuple(layers)
        return stacked

    @property
    def chunk_ids(self) -> list[str]:
        return [i for layer in self._layers for i in _shown(layer, layer.chunk_ids)]

    @property
    def article_ids(self) -> list[str]:
        return [i for layer in self._layers for i in _shown(layer, layer.article_ids)]

    @property
    def days(self) -> list[int] | None:
        if not self.days_indexed:
            return None
        return [int(d) for layer in self._layers for d in _shown(layer, layer.days)]

    def rows_within(self, days: DayRange, hidden: Collection[str] = ()) -> Any | None:
        """The rows of a build's own index (and of its vectors file) holding the chunks published
        within `days`, less those `hidden`, ascending; None for a build that does not know its
        days. Only for one build's index, not a stacked one."""
        (layer,) = self._layers
        if layer.days is None:
            return None
        rows = np.flatnonzero(layer.keep((), days))
        if hidden and len(rows):
            shown = np.fromiter((i not in hidden for i in layer.ids[rows]), bool, len(rows))
            rows = rows[shown]
        return rows

    def ids_of(self, rows: Any) -> list[str]:
        """The chunk ids of rows of a build's own index."""
        (layer,) = self._layers
        return list(layer.ids[rows].tolist())

    def articles_of(self, rows: Any) -> Any:
        """The article ids of rows of a build's own index, as a numpy array."""
        (layer,) = self._layers
        return layer.articles[rows]

    @property
    def days_indexed(self) -> bool:
        """Whether a search can keep a range of publication days (builds before it could not)."""
        return all(layer.days is not None for layer in self._layers)

    def follow(self, other: KeywordIndex) -> None:
        """Answer as `other` from now on (one assignment: a search sees one or the other)."""
        self._layers = other._layers

    def save_model(self, directory: Path) -> None:
        if len(self._layers) != 1:
            raise ValueError("only one build's keyword index is saved")
        model = self._layers[0].model
        if model is None:  # no chunks: the parameters file alone says so
            (directory / PARAMETERS).write_text(json.dumps({"num_docs": 0}), encoding="utf-8")
        else:
            model.save(str(directory), show_progress=False)

    def __len__(self) -> int:
        return sum(layer.visible for layer in self._layers)

    @property
    def weighed_chunks(self) -> int:
        """How many chunks the term weights are computed over: every layer's, those a later
        layer hides too (`len` counts the chunks a search can return)."""
        return sum(len(layer.chunk_ids) for layer in self._layers)

    def term_weight(self, term: str) -> float:
        """How rare a (lower-cased) word is among the chunks: BM25's inverse document frequency,
        the highest for a word no chunk has."""
        frequency = sum(layer.frequency(term) for layer in self._layers)
        return lucene_idf(frequency, self.weighed_chunks)

    def search(
        self,
        query: str,
        k: int,
        exclude_articles: Collection[str] = (),
        days: DayRange | None = None,
    ) -> list[KeywordHit]:
        """The best `k` chunks for `query` with a score above zero, leaving out some articles
        and, when `days` is bounded (and the build knows its days), chunks published outside it."""
        layers = self._layers
        tokens = [t for t in tokenize([query])[0] if any(t in layer.vocabulary for layer in layers)]
        if not tokens or k <= 0:
            return []
        weights = {t: self.term_weight(t) for t in set(tokens)}
        hits: list[KeywordHit] = []
        for layer in layers:
            if not layer.chunk_ids:
                continue
            documents = len(layer.chunk_ids)
            own = {t: lucene_idf(layer.frequency(t), documents) for t in weights}
            scaled = {t: weights[t] / own[t] for t in weights}
            scores = layer.scores(tokens, scaled) * layer.keep(exclude_articles, days)
            for row in _top(scores, k):
                hits.append(
                    KeywordHit(layer.chunk_ids[row], layer.article_ids[row], float(scores[row]))
                )
        hits.sort(key=lambda h: -h.score)
        return hits[:k]


def _shown(layer: _Layer, values: Any) -> Any:
    return values if layer.shown is None else np.asarray(values)[layer.shown]


def _top(scores: Any, k: int) -> list[int]:
    """The rows of the `k` highest scores above zero, highest first."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return [int(i) for i in positive[np.argsort(-scores[positive], kind="stable")]]


def word_terms(word: str) -> list[str]:
    """The terms `tokenize` makes of one word (runs of two or more word characters), without
    the tokenizer's cost; its dots are dropped first, so "u.s." is "us" (`tokenize` keeps
    nothing of it)."""
    return _TERM.findall(word.lower().replace(".", ""))


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stop words, as BM25 indexes them."""
    import bm25s

    result = bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)
    return [list(tokens) for tokens in result]


def build_keyword_index(chunks: Sequence[Chunk], with_titles: bool = False) -> KeywordIndex:
    """A BM25 index of `chunks` (their text, after their title if `with_titles`)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    model = None
    if chunks:  # bm25s cannot index nothing
        model = bm25s.BM25()
        model.index(
            tokenize([searchable_text(c, with_titles) for c in chunks]), show_progress=False
        )
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


def check_keyword_count(directory: Path, expected_chunks: int) -> None:
    """`IndexDamagedError` unless the index saved in `directory` says it holds `expected_chunks`
    (its parameters file only: a check that costs nothing at any size)."""
    path = directory / PARAMETERS
    try:
        documents = int(json.loads(path.read_text(encoding="utf-8"))["num_docs"])
    except FileNotFoundError as e:
        raise damaged(f"The keyword index at {directory} is missing") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise damaged(
            f"The keyword index at {directory} is damaged ({e.__class__.__name__})"
        ) from e
    if documents != expected_chunks:
        raise damaged(
            f"The keyword index has {documents} chunks but the vector index has {expected_chunks}"
        )


def load_keyword_index(directory: Path, expected_chunks: int) -> KeywordIndex:
    """The index saved in `directory`; `IndexDamagedError` if it is missing, damaged or out of
    step with the vector index's `expected_chunks`."""
    import bm25s

    try:
        ids = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        # Memory-mapped: a search reads only its terms' postings, so a large index costs what is
        # searched, not its size, in resident memory.
        empty = json.loads((directory / PARAMETERS).read_text(encoding="utf-8"))["num_docs"] == 0
        model = None if empty else bm25s.BM25.load(str(directory), show_progress=False, mmap=True)
        days = ids.get("days")  # absent in builds written before days were indexed
        keyword = KeywordIndex(
            model,
            list(ids["chunk_ids"]),
            list(ids["article_ids"]),
            None if days is None else [int(d) for d in days],
        )
        documents = 0 if model is None else int(model.scores["num_docs"])
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

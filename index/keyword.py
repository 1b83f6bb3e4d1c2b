"""The keyword index: BM25 over the same chunks as the Chroma collection (the only bm25s user).

It is saved beside Chroma (`<index_dir>/keyword/<collection>/`) by the same build code, and
replaced in one rename when a new index is complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.chunking import Chunk, searchable_text
from index.errors import IndexMismatchError

if TYPE_CHECKING:
    from bm25s import BM25

STOPWORDS = "en"


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A chunk found by keywords, with its BM25 score."""

    chunk_id: str
    article_id: str
    score: float


class KeywordIndex:
    """BM25 over chunk texts; `search` returns chunk ids, best first."""

    def __init__(self, model: BM25, chunk_ids: list[str], article_ids: list[str]) -> None:
        self._model = model
        self.chunk_ids = chunk_ids
        self.article_ids = article_ids
        self._articles = np.asarray(article_ids)

    def save_model(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def search(
        self, query: str, k: int, exclude_articles: Collection[str] = ()
    ) -> list[KeywordHit]:
        """The best `k` chunks for `query` with a score above zero, leaving out some articles."""
        vocab: dict[str, int] = self._model.vocab_dict
        tokens = [t for t in tokenize([query])[0] if t in vocab]
        if not tokens or k <= 0 or not self.chunk_ids:
            return []
        mask = None
        if exclude_articles:
            mask = (~np.isin(self._articles, list(exclude_articles))).astype(np.float32)
        documents, scores = self._model.retrieve(
            [tokens], k=min(k, len(self.chunk_ids)), show_progress=False, weight_mask=mask
        )
        return [
            KeywordHit(self.chunk_ids[int(d)], self.article_ids[int(d)], float(s))
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
    return KeywordIndex(model, [c.id for c in chunks], [c.article_id for c in chunks])


def keyword_dir(index_dir: Path, collection: str) -> Path:
    return index_dir / "keyword" / collection


def save_keyword_index(keyword: KeywordIndex, index_dir: Path, collection: str) -> None:
    """Write the index beside a staging name, then swap it in with one rename."""
    target = keyword_dir(index_dir, collection)
    staging = target.with_name(f"{collection}-staging")
    old = target.with_name(f"{collection}-old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    keyword.save_model(staging)
    (staging / "chunks.json").write_text(
        json.dumps({"chunk_ids": keyword.chunk_ids, "article_ids": keyword.article_ids}),
        encoding="utf-8",
    )
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def open_keyword_index(index_dir: Path, collection: str, expected_chunks: int) -> KeywordIndex:
    """The saved keyword index; `IndexMismatchError` if it is missing or out of step."""
    import bm25s

    directory = keyword_dir(index_dir, collection)
    try:
        ids = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        model = bm25s.BM25.load(str(directory), show_progress=False)
    except (OSError, ValueError) as e:
        raise IndexMismatchError(
            f"The keyword index at {directory} is missing or damaged. "
            "Rebuild the index with: python -m index rebuild"
        ) from e
    keyword = KeywordIndex(model, list(ids["chunk_ids"]), list(ids["article_ids"]))
    if len(keyword) != expected_chunks:
        raise IndexMismatchError(
            f"The keyword index has {len(keyword)} chunks but the vector index has "
            f"{expected_chunks}. Rebuild the index with: python -m index rebuild"
        )
    return keyword

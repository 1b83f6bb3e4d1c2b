"""Chunks keep sentences whole, stay under the model's word-piece limit, overlap, and know
exactly where they came from."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest

from index.chunking import chunk_article, locate_spans
from index.embeddings import Embedder, packaged_model_path
from index.sources import load_articles
from index.types import Article
from tests.conftest import SAMPLE_ARTICLES

SENTENCE_END = (".", "!", "?", '"', "'", "\u201d", ")")


@pytest.fixture(scope="module")
def sample_articles() -> tuple[Article, ...]:
    return load_articles(SAMPLE_ARTICLES).articles


@functools.cache
def reference_tokenizer() -> Any:
    """The model's tokenizer as transformers loads it, independent of the embedder's own."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(packaged_model_path()), local_files_only=True)


def chunks_of(article: Article, embedder: Embedder, max_tokens: int = 200, overlap: int = 40):
    return chunk_article(
        article, max_tokens=max_tokens, overlap_tokens=overlap, count_tokens=embedder.count_tokens
    )


def test_spans_point_at_the_chunk_text(sample_articles, embedder: Embedder) -> None:
    for article in sample_articles:
        for chunk in chunks_of(article, embedder):
            assert article.text[chunk.start : chunk.end] == chunk.text
            assert chunk.article_id == article.id


def test_no_chunk_exceeds_the_model_limit(sample_articles, embedder: Embedder) -> None:
    tokenizer = reference_tokenizer()
    for article in sample_articles:
        for chunk in chunks_of(article, embedder):
            # With [CLS] and [SEP] the model would truncate anything over 256.
            assert len(tokenizer(chunk.text)["input_ids"]) <= 256
            assert embedder.count_tokens(chunk.text) <= 200


def test_chunks_end_on_sentence_boundaries(sample_articles, embedder: Embedder) -> None:
    for article in sample_articles:
        for chunk in chunks_of(article, embedder):
            follows = article.text[chunk.end : chunk.end + 1]
            assert chunk.text.endswith(SENTENCE_END) or follows in ("", "\n"), chunk.text[-80:]


def test_neighbouring_chunks_overlap(embedder: Embedder) -> None:
    sentences = [f"Sentence number {i} says the harbour reopened on day {i}." for i in range(60)]
    article = Article(id="a", title="T", text=" ".join(sentences))
    chunks = chunks_of(article, embedder, max_tokens=64, overlap=20)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # shared sentences
        assert after.start > before.start


def test_a_sentence_longer_than_the_limit_is_still_split(embedder: Embedder) -> None:
    article = Article(id="a", title="T", text=" ".join(["word"] * 900))
    chunks = chunks_of(article, embedder, max_tokens=100, overlap=10)
    assert len(chunks) >= 9
    assert all(embedder.count_tokens(c.text) <= 100 for c in chunks)


def test_ids_are_content_hashes(embedder: Embedder) -> None:
    article = Article(id="a", title="T", text="One sentence here. Another one there.")
    first = [c.id for c in chunks_of(article, embedder)]
    assert first == [c.id for c in chunks_of(article, embedder)]
    changed = Article(id="a", title="T", text="One sentence here. Another one elsewhere.")
    assert first != [c.id for c in chunks_of(changed, embedder)]


def test_locate_spans_finds_overlapping_pieces() -> None:
    text = "A b. C d. E f."
    assert locate_spans(text, ["A b. C d.", "C d. E f."]) == [(0, 9), (5, 14)]
    with pytest.raises(ValueError, match="not a substring"):
        locate_spans(text, ["missing"])


def test_counting_matches_the_tokenizer_after_encoding(embedder: Embedder) -> None:
    # Encoding sets padding and truncation on the model's tokenizer; counts must not follow it.
    embedder.encode(["A short text.", "Another, somewhat longer, text to pad the first one."])
    tokenizer = reference_tokenizer()
    for text in ("Hi.", "A", " ".join(["word"] * 400), "Zürich's café, 1932 [2]."):
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert embedder.count_tokens(text) == expected

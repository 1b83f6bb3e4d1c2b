"""Chunks: `chunk_article` cuts an article into passages (`index.types.Chunk`).

Chunks keep sentences whole where a sentence fits, never exceed the embedding model's word-piece
limit (counted with the model's own tokenizer), overlap by whole sentences, and are identified by a
hash of their content.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.types import Article, Chunk, content_id

CHUNKER_VERSION = "1"
# Sentence ends (optionally followed by a closing quote or bracket) and line breaks, then words.
SEPARATORS = (
    r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+|\s*\n\s*",
    r"\s+",
    "",
)

TokenCounter = Callable[[str], int]


def chunk_article(
    article: Article, *, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter
) -> list[Chunk]:
    """Split an article into overlapping passages of at most `max_tokens` word pieces."""
    # The splitter measures each sentence and separator several times: count each once.
    splitter = RecursiveCharacterTextSplitter(
        separators=list(SEPARATORS),
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=max_tokens,
        chunk_overlap=min(overlap_tokens, max_tokens // 2),
        length_function=cache(count_tokens),
        strip_whitespace=True,
    )
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(
        locate_spans(article.text, splitter.split_text(article.text))
    ):
        text = article.text[start:end]
        chunks.append(
            Chunk(
                id=content_id(article.id, str(start), text),
                article_id=article.id,
                index=index,
                text=text,
                start=start,
                end=end,
                title=article.title,
                source=article.source,
                url=article.url,
                published=article.published,
                other_sources=article.other_sources,
            )
        )
    return chunks


def searchable_text(chunk: Chunk, with_title: bool) -> str:
    """What is embedded and keyword-indexed for a chunk: its text, after its title if asked."""
    return f"{chunk.title}\n{chunk.text}" if with_title else chunk.text


def locate_spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """The character span of each piece in `text`; pieces are in order and may overlap."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in pieces:
        start = text.find(piece, cursor)
        if start < 0:  # an overlap can begin before the previous piece's end
            start = text.find(piece)
        if start < 0:
            raise ValueError("chunk text is not a substring of the article")
        spans.append((start, start + len(piece)))
        cursor = start + 1
    return spans

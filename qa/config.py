"""Settings: the one typed settings object, read from `CITEQA_*` variables at entry points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from index.config import IndexSettings

RetrieverMode = Literal["dense", "bm25", "hybrid"]
RETRIEVER_MODES: tuple[RetrieverMode, ...] = ("dense", "bm25", "hybrid")


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class Settings(IndexSettings):
    """Everything citeqa can be told: the index settings plus retrieval, model and server."""

    retriever: RetrieverMode = Field(
        "hybrid",
        description="How passages are found: `dense` (embeddings), `bm25` (keywords) or "
        "`hybrid` (both, fused by reciprocal rank).",
    )
    top_k: int = Field(4, ge=1, le=20, description="Passages retrieved and shown to the model.")
    max_passages_per_article: int = Field(
        0,
        ge=0,
        le=20,
        description="At most this many passages from one article (0: no limit); more articles "
        "get a chance.",
    )
    min_relevance: float = Field(
        0.35,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity the best passage needs, else the answer is "
        '"the articles don\'t cover this" and the model is not called.',
    )
    max_question_chars: int = Field(
        2000, ge=10, description="Longest question accepted, in characters."
    )
    history_turns: int = Field(
        3, ge=0, le=20, description="Earlier question/answer pairs sent to the model."
    )
    llm_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="`qwen2.5-coder-1.5b` (default), `smollm2-135m`, or the path of a .gguf file.",
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "citeqa" / "models",
        description="Where the default model is assembled and verified once.",
    )
    llm_threads: int = Field(
        default_factory=_default_threads, ge=1, description="CPU threads for generation."
    )
    llm_context_tokens: int = Field(
        4096, ge=512, description="Context window of the model, in tokens."
    )
    max_answer_tokens: int = Field(256, ge=16, le=2048, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    host: str = Field("127.0.0.1", description="Address the web UI binds to.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the web UI.")

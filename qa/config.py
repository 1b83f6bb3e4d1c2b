"""Settings: the one typed settings object, read from `CITEQA_*` variables at entry points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from index.config import IndexSettings

# A sentence must reach this support score (qa.evidence.support_score) to count as backed by a
# passage: the default of `CITEQA_MIN_SUPPORT`, chosen on SQuAD dev answers
# (docs/architecture.md, "Checked citations"); qa.grounding's default too.
SUPPORT_THRESHOLD = 0.6

RetrieverMode = Literal["dense", "bm25", "hybrid"]
RETRIEVER_MODES: tuple[RetrieverMode, ...] = ("dense", "bm25", "hybrid")
LlmBackend = Literal["local", "openai", "extractive"]
LLM_BACKENDS: tuple[LlmBackend, ...] = ("local", "openai", "extractive")


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
        0.42,
        ge=0.0,
        le=1.0,
        description="Relevance (meaning and shared rare words) the best retrieved sentence "
        'needs, else the answer is "the articles don\'t cover this" and no model is called.',
    )
    min_answer_relevance: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Relevance to the question that the passage text backing an answer needs, "
        'else the answer is "the articles don\'t cover this".',
    )
    min_support: float = Field(
        SUPPORT_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="Support score a sentence of the answer needs from a passage to keep its "
        "citation; sentences below it are marked unsupported.",
    )
    newest_first_days: int = Field(
        31,
        ge=0,
        le=3650,
        description="A factoid question that names no time is answered from the articles "
        "published in the N days up to its as-of date when they answer it about as well as the "
        "whole archive (0: always the whole archive).",
    )
    prompt_passage_tokens: int = Field(
        128,
        ge=32,
        le=3000,
        description="Passage text sent to the model, in tokens: the sentences that best answer "
        "the question, from the best passages.",
    )
    open_passage_tokens: int = Field(
        320,
        ge=32,
        le=2048,
        description="Passage text sent to the model for an open question or a digest (a few "
        "cited sentences from several articles), in tokens.",
    )
    rewrite_with_model: bool = Field(
        True,
        description="Rewrite follow-up questions with the model (else by a rule) before retrieval.",
    )
    max_question_chars: int = Field(
        2000, ge=10, description="Longest question accepted, in characters."
    )
    history_turns: int = Field(
        3, ge=0, le=20, description="Earlier question/answer pairs sent to the model."
    )
    llm_backend: LlmBackend = Field(
        "local",
        description="Who writes answers: `local` (llama.cpp, default), `openai` (any "
        "OpenAI-compatible server) or `extractive` (no model: the best supporting sentences).",
    )
    llm_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="`qwen2.5-coder-1.5b` (default), `smollm2-135m`, or the path of a .gguf file.",
    )
    openai_base_url: str | None = Field(
        None,
        description="Base URL of the OpenAI-compatible server for the `openai` backend, e.g. "
        "`http://127.0.0.1:8000/v1`.",
    )
    openai_model: str = Field(
        "default", description="Model name sent to the OpenAI-compatible server."
    )
    openai_api_key: SecretStr = Field(
        SecretStr("not-needed"),
        description="API key for the OpenAI-compatible server (local servers ignore it).",
    )
    llm_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds an answer may take, and the local model may wait before its first "
        "or next words, before the extractive answer is given instead.",
    )
    llm_threads: int = Field(
        default_factory=_default_threads,
        ge=1,
        description="Most CPU threads for generation; each answer uses one per core that other "
        "work left free over the last second (at least one).",
    )
    llm_context_tokens: int = Field(
        4096, ge=512, description="Context window of the model, in tokens."
    )
    max_answer_tokens: int = Field(256, ge=16, le=2048, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    host: str = Field("127.0.0.1", description="Address the web UI binds to.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the web UI.")
    auth_username: str | None = Field(
        None,
        description="Username of the login; with `CITEQA_AUTH_PASSWORD`, the page asks for it and "
        "the API and MCP server take it (HTTP Basic, or the password as a bearer token). "
        "Required when `CITEQA_HOST` is not a loopback address.",
    )
    auth_password: SecretStr | None = Field(
        None, description="Password of the login (see `CITEQA_AUTH_USERNAME`)."
    )
    max_upload_mb: int = Field(
        20, ge=1, le=1024, description="Largest file the web UI accepts for upload, in MB."
    )
    queue_size: int = Field(
        16,
        ge=1,
        le=1000,
        description="Questions and uploads the web UI holds waiting; when full, new ones are "
        "refused at once with a message.",
    )
    save_conversations: bool = Field(
        True,
        description="Save the web UI's conversations (questions, answers, their sources) so that "
        "they survive a reload and a restart, per login; they can be listed, reopened, deleted "
        "and exported.",
    )
    conversations_file: Path | None = Field(
        None,
        description="SQLite file of the saved conversations; empty means "
        "`conversations.sqlite3` in `CITEQA_INDEX_DIR`.",
    )


# How `settings_table` shows the defaults that are computed or empty (docs/configuration.md).
_DEFAULT_SHOWN = {
    "embedding_model_path": "(packaged model)",
    "model_cache_dir": "~/.cache/citeqa/models",
    "llm_threads": "number of CPUs, at most 8",
}


def settings_table() -> str:
    """The Markdown table of every setting (variable, default, meaning), from the fields' own
    descriptions: docs/configuration.md holds exactly this, and a test checks it."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if name in _DEFAULT_SHOWN:
            shown = _DEFAULT_SHOWN[name]
        elif default is None:
            shown = "(none)"
        elif isinstance(default, SecretStr):
            shown = default.get_secret_value()
        else:
            shown = str(default)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `CITEQA_{name.upper()}` | `{shown}` | {meaning} |")
    return "\n".join(rows) + "\n"

"""The chat model: llama.cpp through LangChain's `ChatLlamaCpp`. The only module that imports it."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from qa.errors import ModelFileError

log = logging.getLogger(__name__)


def open_chat_model(
    model_path: Path,
    *,
    context_tokens: int,
    threads: int,
    max_tokens: int,
    temperature: float,
) -> BaseChatModel:
    """A streaming chat model on a local GGUF file, loaded once; greedy when temperature is 0."""
    from langchain_community.chat_models import ChatLlamaCpp

    log.info("loading %s", model_path)
    try:
        # llama.cpp prints its load log to stderr from C; keep the terminal readable.
        with contextlib.redirect_stderr(io.StringIO()):
            return ChatLlamaCpp(
                model_path=str(model_path),
                n_ctx=context_tokens,
                n_threads=threads,
                n_batch=512,
                # ChatLlamaCpp defaults to a RoPE base of 10000, which garbles models such as
                # Qwen2.5 (base 1e6); 0 makes llama.cpp read both values from the GGUF file.
                rope_freq_base=0.0,
                rope_freq_scale=0.0,
                max_tokens=max_tokens,
                temperature=temperature,
                top_k=1 if temperature == 0 else 40,
                repeat_penalty=1.0,
                streaming=True,
                verbose=False,
            )
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelFileError(f"Cannot load the language model {model_path}: {e}") from e


def count_prompt_tokens(llm: BaseChatModel, messages: Sequence[BaseMessage]) -> int | None:
    """Tokens of `messages` as a llama.cpp model reads them (chat markup not counted)."""
    client = getattr(llm, "client", None)
    tokenize = getattr(client, "tokenize", None)
    if tokenize is None:
        return None
    text = "\n".join(str(m.content) for m in messages)
    return len(tokenize(text.encode("utf-8"), add_bos=False))

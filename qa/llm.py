"""The chat model: llama.cpp in a worker process, or an OpenAI-compatible server (`ChatOpenAI`).

LangChain's side of both; the only module that imports the OpenAI client (llama.cpp itself is
imported only in the worker process, `qa.worker`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import ModelConnectionError, ModelError, ModelTimeoutError
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from index.errors import SettingsError
from qa.config import Settings
from qa.errors import GenerationError, ModelFileError
from qa.models import resolve_model_path
from qa.supervisor import Supervisor, WorkerConfig

log = logging.getLogger(__name__)

STATE_FOLDER = "prompt-states"  # in the model cache: the model's state after the prompt's start


def open_llm(settings: Settings) -> BaseChatModel | None:
    """The chat model the settings ask for; None for the `extractive` backend (no model)."""
    if settings.llm_backend == "extractive":
        return None
    if settings.llm_backend == "openai":
        return open_server_model(settings)
    return open_chat_model(
        resolve_model_path(settings.llm_model, settings.model_cache_dir),
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        max_tokens=settings.max_answer_tokens,
        temperature=settings.temperature,
        timeout_s=settings.llm_timeout_s,
        state_dir=settings.model_cache_dir / STATE_FOLDER,
    )


def open_server_model(settings: Settings) -> BaseChatModel:
    """A streaming chat model on the OpenAI-compatible server at `settings.openai_base_url`.

    That URL is the only host contacted: proxy variables, `OPENAI_*` URLs and redirects are
    ignored, nothing is retried, and every network wait is bounded by `llm_timeout_s`.
    """
    base_url = (settings.openai_base_url or "").strip().rstrip("/")
    if not base_url:
        raise SettingsError(
            "The openai backend needs a server: set CITEQA_OPENAI_BASE_URL "
            "(e.g. http://127.0.0.1:8000/v1), or choose CITEQA_LLM_BACKEND=local."
        )
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"CITEQA_OPENAI_BASE_URL must start with http:// or https:// (got {base_url!r})."
        )
    import openai
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=base_url,
        model=settings.openai_model,
        api_key=settings.openai_api_key,
        temperature=settings.temperature,
        # Sent as `max_tokens`, which every OpenAI-compatible server reads; ChatOpenAI's own
        # field goes out as `max_completion_tokens`, which llama.cpp's Python server ignores.
        extra_body={"max_tokens": settings.max_answer_tokens},
        timeout=settings.llm_timeout_s,
        max_retries=0,
        streaming=True,
        use_responses_api=False,
        openai_proxy=None,
        http_socket_options=(),
        # Own HTTP clients: no proxy or certificate settings from the environment, no redirects
        # to another host.
        http_client=openai.DefaultHttpxClient(trust_env=False, follow_redirects=False),
        http_async_client=openai.DefaultAsyncHttpxClient(trust_env=False, follow_redirects=False),
    )
    return ServerChatModel(chat=chat, base_url=base_url, timeout_s=settings.llm_timeout_s)


class StreamingChatModel(BaseChatModel):
    """A chat model that only streams: a whole answer is its streamed chunks joined."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))


class ServerChatModel(StreamingChatModel):
    """A chat model on a server whose failures become `GenerationError`s saying what to do."""

    chat: BaseChatModel
    base_url: str
    timeout_s: float

    @property
    def _llm_type(self) -> str:
        return "openai-compatible-server"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, **self.chat._identifying_params}

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self._explained_errors():
            yield from self.chat._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    @contextlib.contextmanager
    def _explained_errors(self) -> Iterator[None]:
        try:
            yield
        except ModelTimeoutError as e:
            raise GenerationError(
                f"The language model server at {self.base_url} did not answer within "
                f"{self.timeout_s:g} s. Check that it is running and not overloaded, or raise "
                "CITEQA_LLM_TIMEOUT_S."
            ) from e
        except ModelConnectionError as e:
            raise GenerationError(
                f"Cannot reach the language model server at {self.base_url} ({e}). Start it, or "
                "fix CITEQA_OPENAI_BASE_URL."
            ) from e
        except ModelError as e:
            raise GenerationError(
                f"The language model server at {self.base_url} refused the request: {e}. Check "
                "CITEQA_OPENAI_BASE_URL, CITEQA_OPENAI_MODEL and CITEQA_OPENAI_API_KEY."
            ) from e


def open_chat_model(
    model_path: Path,
    *,
    context_tokens: int,
    threads: int,
    max_tokens: int,
    temperature: float,
    timeout_s: float = 60.0,
    state_dir: Path | None = None,
) -> LocalChatModel:
    """A streaming chat model on a local GGUF file, run by a worker process that is started and
    loaded now (so a bad file is reported here); greedy when temperature is 0. The state after
    the prompt's fixed start is kept in `state_dir` (none: read again at each start)."""
    check_gguf(model_path)
    supervisor = Supervisor(
        WorkerConfig(
            model_path=model_path,
            context_tokens=context_tokens,
            max_threads=threads,
            first_token_timeout_s=timeout_s,
            state_dir=state_dir,
        )
    )
    log.info("loading %s in a worker process", model_path)
    supervisor.start()
    params = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": 0.95,
        "top_k": 1 if temperature == 0 else 40,
        "repeat_penalty": 1.0,
    }
    return LocalChatModel(supervisor=supervisor, params=params, model_path=str(model_path))


def check_generation(llm: BaseChatModel, messages: Sequence[BaseMessage]) -> None:
    """Write a few tokens after `messages` (the fixed start of every prompt, which the worker
    then keeps cached, and on disk for the next start): a model that crashes or hangs fails
    here, with a `ModelWorkerError`, not in front of the first user. Only the local model is
    checked (a server may be down now and up later)."""
    if not isinstance(llm, LocalChatModel):
        return
    started = time.perf_counter()
    params = {**llm.params, "max_tokens": 2}
    for _ in llm.supervisor.chat(message_dicts(messages), params, keep=True):
        pass
    log.info(
        "the language model wrote its first tokens in %.1f s (prompt state %s)",
        time.perf_counter() - started,
        llm.supervisor.prefix or "not kept",
    )


def check_gguf(model_path: Path) -> None:
    """`ModelFileError` unless `model_path` is a readable file that starts like a GGUF model."""
    try:
        with model_path.open("rb") as file:
            magic = file.read(4)
    except OSError as e:
        raise ModelFileError(f"Cannot load the language model {model_path}: {e}") from e
    if magic != b"GGUF":
        raise ModelFileError(
            f"Cannot load the language model {model_path}: it is not a GGUF model file. "
            "Set CITEQA_LLM_MODEL to a .gguf file, or to qwen2.5-coder-1.5b."
        )


class LocalChatModel(StreamingChatModel):
    """A chat model on llama.cpp in a worker process (`qa.supervisor`): its failures are
    `ModelWorkerError`s saying what happened, and the next call gets a fresh worker."""

    supervisor: Supervisor
    params: dict[str, Any]
    model_path: str

    @property
    def _llm_type(self) -> str:
        return "llama.cpp-worker"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, **self.params}

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        params = {**self.params, "stop": stop or [], **kwargs}
        for text in self.supervisor.chat(message_dicts(messages), params):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager is not None:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    def close(self) -> None:
        """Stop the worker process."""
        self.supervisor.close()


def message_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Messages as llama.cpp's chat template reads them."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in messages]


def count_prompt_tokens(llm: BaseChatModel, messages: Sequence[BaseMessage]) -> int | None:
    """Tokens of `messages` as a llama.cpp model reads them (chat markup not counted); None for
    a model that cannot count them here (an OpenAI-compatible server)."""
    if not isinstance(llm, LocalChatModel):
        return None
    return llm.supervisor.count_tokens("\n".join(str(m.content) for m in messages))

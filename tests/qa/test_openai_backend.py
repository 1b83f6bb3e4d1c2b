"""The `openai` backend against a real OpenAI-compatible server on loopback: llama-cpp-python's own
server (`python -m llama_cpp.server`) serving SmolLM2."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel

from index.errors import SettingsError
from qa import Answer, build_chain
from qa.config import Settings
from qa.errors import GenerationError
from qa.llm import count_prompt_tokens, open_llm
from qa.models import SMOLLM2, resolve_model_path
from tests.conftest import XINHUA_TITLE
from tests.support.servers import answers_http, free_port, stop_process

SERVER_START_S = 180.0
COMPLETION_SERVED = '"POST /v1/chat/completions HTTP/1.1" 200'
# Addresses no request may go to: TEST-NET-1 (RFC 5737), never routed. pytest-socket would block
# any connection to it, so a client that follows these variables fails the test.
ELSEWHERE = "http://192.0.2.1:9"


@dataclass(frozen=True, slots=True)
class LlamaServer:
    """A running `llama_cpp.server` and its log (uvicorn's access log included)."""

    url: str  # the OpenAI base URL, ending in /v1
    log: Path

    def completions_served(self) -> int:
        return self.log.read_text(encoding="utf-8", errors="replace").count(COMPLETION_SERVED)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with SmolLM2, for the session."""
    model = resolve_model_path(SMOLLM2, tmp_path_factory.mktemp("models"))
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not answers_http(port, "/v1/models"):
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up after {SERVER_START_S:g} s:\n{tail(log)}")
            time.sleep(0.2)
        yield LlamaServer(url=f"http://127.0.0.1:{port}/v1", log=log)
    finally:
        stop_process(process, timeout_s=15)


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def server_settings(base_url: str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_backend": "openai",
        "openai_base_url": base_url,
        "max_answer_tokens": 16,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def open_server_llm(base_url: str | None, **overrides: object) -> BaseChatModel:
    llm = open_llm(server_settings(base_url, **overrides))
    assert llm is not None
    return llm


def test_invoke_and_stream_return_the_servers_text(llama_server: LlamaServer) -> None:
    llm = open_server_llm(llama_server.url)
    served = llama_server.completions_served()

    reply = llm.invoke("Count from 1 to 100, one number per line.")
    chunks = list(llm.stream("Count from 1 to 100, one number per line."))

    assert isinstance(reply.content, str)
    assert reply.content.strip()
    streamed = "".join(str(chunk.content) for chunk in chunks)
    assert len([chunk for chunk in chunks if chunk.content]) > 1  # pieces, not one block
    assert streamed == reply.content  # greedy decoding: the same text both ways
    # CITEQA_MAX_ANSWER_TOKENS reaches the server (sent as `max_tokens`): the answer is cut.
    assert reply.response_metadata["finish_reason"] == "length"
    assert llama_server.completions_served() == served + 2
    assert count_prompt_tokens(llm, []) is None


def test_only_the_base_url_is_contacted(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, ELSEWHERE)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_PROXY", ELSEWHERE)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{ELSEWHERE}/v1")
    monkeypatch.setenv("OPENAI_API_BASE", f"{ELSEWHERE}/v1")

    reply = open_server_llm(llama_server.url).invoke("Say hello.")

    assert str(reply.content).strip()


@pytest.mark.parametrize("base_url", [None, "", "   "])
def test_a_missing_base_url_names_the_setting(base_url: str | None) -> None:
    with pytest.raises(SettingsError, match="set CITEQA_OPENAI_BASE_URL"):
        open_llm(server_settings(base_url))


def test_a_base_url_without_scheme_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="CITEQA_OPENAI_BASE_URL must start with http"):
        open_llm(server_settings("127.0.0.1:8000/v1"))


def ask_whole(llm: BaseChatModel) -> str:
    return str(llm.invoke("Say hello.").content)


def ask_streamed(llm: BaseChatModel) -> str:
    return "".join(str(chunk.content) for chunk in llm.stream("Say hello."))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ask", [ask_whole, ask_streamed])
def test_a_server_that_is_down_fails_at_once_with_what_to_do(
    ask: Callable[[BaseChatModel], str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    llm = open_server_llm(url, llm_timeout_s=30.0)

    with pytest.raises(GenerationError) as caught:
        ask(llm)

    message = str(caught.value)
    assert f"Cannot reach the language model server at {url}" in message
    assert "CITEQA_OPENAI_BASE_URL" in message


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_times_out_with_what_to_do() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        llm = open_server_llm(url, llm_timeout_s=1.0)

        with pytest.raises(GenerationError) as caught:
            llm.invoke("Say hello.")

    message = str(caught.value)
    assert f"The language model server at {url} did not answer within 1 s" in message
    assert "CITEQA_LLM_TIMEOUT_S" in message


def test_a_wrong_path_on_the_server_says_what_to_check(llama_server: LlamaServer) -> None:
    wrong = llama_server.url.removesuffix("/v1") + "/api"

    with pytest.raises(GenerationError) as caught:
        open_server_llm(wrong).invoke("Say hello.")

    message = str(caught.value)
    assert f"The language model server at {wrong} refused the request" in message
    assert "404" in message
    assert "CITEQA_OPENAI_BASE_URL" in message


def test_the_chain_answers_through_the_server(
    llama_server: LlamaServer, sample_index: Path
) -> None:
    chain = build_chain(
        Settings(llm_backend="openai", openai_base_url=llama_server.url, index_dir=sample_index)
    )
    served = llama_server.completions_served()

    answer = chain.invoke("Where did Wang Lei make the remarks?")
    # (To "Who is Wang Lei?" or "What does Wang Lei coordinate?" SmolLM2 answers from another
    # article, "The IPCC Chair is Hoesung Lee.": the check refuses an answer about something the
    # question does not name.)

    assert isinstance(answer, Answer)
    assert answer.covered
    assert answer.retrieved[0].chunk.title == XINHUA_TITLE
    assert answer.text.strip()
    assert llama_server.completions_served() > served  # the server wrote it, not a fallback

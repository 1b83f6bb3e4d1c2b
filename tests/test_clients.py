"""citeqa from other clients, over loopback against the running app: the `openai` SDK (streamed
and not), LangChain's `ChatOpenAI` pointed at citeqa, and the MCP SDK's own client; the login,
Host and Origin checks; every error in OpenAI's shape with its status.

The app answers extractively (no language model: exact, fast answers) except in the one test
that streams the SmolLM2 model's answer.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from langchain_openai import ChatOpenAI
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from index.embeddings import Embedder
from qa import NOT_COVERED, QAChain
from qa.errors import BusyError
from tests.conftest import XINHUA_TITLE, make_settings
from tests.support.factories import launch, open_chain
from ui.clients import AnswerRunner

pytestmark = pytest.mark.server

PASSWORD = "s3cret-pass"
WANG_LEI = "Wang Lei, coordinator for cyber and digital affairs"


@pytest.fixture(scope="module")
def served(sample_index: Path, embedder: Embedder) -> Iterator[str]:
    """The app over the sample index, answering extractively; its base URL."""
    chain = open_chain(make_settings(sample_index, llm_backend="extractive"), embedder)
    demo, url = launch(chain)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


@pytest.fixture(scope="module")
def guarded(sample_index: Path, embedder: Embedder) -> Iterator[str]:
    """The same app behind a login."""
    settings = make_settings(
        sample_index,
        llm_backend="extractive",
        auth_username="reader",
        auth_password=SecretStr(PASSWORD),
    )
    demo, url = launch(open_chain(settings, embedder))
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


def sdk(base: str, key: str = "not-needed") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)


def ask(base: str, question: str, **extra: Any) -> Any:
    return complete(base, [{"role": "user", "content": question}], **extra)


def complete(base: str, messages: Any, key: str = "not-needed", **extra: Any) -> Any:
    """`chat.completions.create` with the openai SDK (the reply, or its stream's chunks)."""
    return sdk(base, key).chat.completions.create(model="citeqa", messages=messages, **extra)


def raw(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def error_of(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    assert set(document) == {"error"}
    assert set(document["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = document["error"]
    return error


# ---- the openai SDK ----


def test_the_openai_sdk_gets_the_answer_with_its_xinhua_source(served: str) -> None:
    reply = ask(served, "Who is Wang Lei?")
    content = reply.choices[0].message.content
    assert reply.model == "citeqa"
    assert reply.choices[0].finish_reason == "stop"
    assert WANG_LEI in content
    assert "[1]" in content
    assert f"Sources:\n- [1] {XINHUA_TITLE} (Xinhua, 2024-03-19)" in content
    citations = reply.model_extra["citations"]
    first = citations[0]
    assert (first["marker"], first["title"], first["outlet"], first["date"]) == (
        1,
        XINHUA_TITLE,
        "Xinhua",
        "2024-03-19",
    )
    assert first["supporting_text"][0].startswith(WANG_LEI)
    assert first["passage"][slice(*first["spans"][0])] == first["supporting_text"][0]
    assert reply.model_extra["citeqa"]["covered"] is True
    assert reply.model_extra["citeqa"]["answered_by"] == "extractive"


def test_the_openai_sdk_streams_the_same_answer(served: str) -> None:
    whole = ask(served, "Who is Wang Lei?").choices[0].message.content
    chunks = list(ask(served, "Who is Wang Lei?", stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"][0]["title"] == XINHUA_TITLE
    assert len({c.id for c in chunks}) == 1


def test_earlier_messages_are_the_history(served: str) -> None:
    first = ask(served, "Who is Wang Lei?").choices[0].message.content
    messages = [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Who is Wang Lei?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Where did he make the remarks?"},
    ]
    reply = complete(served, messages)
    searched = reply.model_extra["citeqa"]["searched_for"]
    assert searched is not None
    assert "Wang Lei" in searched
    assert "Brussels" in reply.choices[0].message.content


def test_not_covered_is_a_normal_answer(served: str) -> None:
    reply = ask(served, "What is the best recipe for banana bread?")
    assert reply.choices[0].message.content == NOT_COVERED
    assert reply.model_extra["citations"] == []
    assert reply.model_extra["citeqa"]["covered"] is False
    assert reply.model_extra["citeqa"]["refused"] == "gate"
    chunks = list(ask(served, "What is the best recipe for banana bread?", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == NOT_COVERED


def test_as_of_travels_as_an_extra_field(served: str) -> None:
    week = sdk(served).chat.completions.create(
        model="citeqa",
        messages=[{"role": "user", "content": "What happened this week?"}],
        extra_body={"as_of": "2024-03-20"},
    )
    extra = week.model_extra
    assert extra is not None
    assert extra["citeqa"]["as_of"] == "2024-03-20"
    assert "2024-03-13 to 2024-03-20" in extra["citeqa"]["searched_days"]
    assert extra["citations"][0]["outlet"] == "Xinhua"
    with pytest.raises(openai.BadRequestError, match="YYYY-MM-DD"):
        sdk(served).chat.completions.create(
            model="citeqa",
            messages=[{"role": "user", "content": "Who is Wang Lei?"}],
            extra_body={"as_of": "someday"},
        )


def test_models_are_listed(served: str) -> None:
    models = sdk(served).models.list()
    assert [m.id for m in models.data] == ["citeqa"]
    assert sdk(served).models.retrieve("citeqa").owned_by == "citeqa"
    with pytest.raises(openai.NotFoundError):
        sdk(served).models.retrieve("gpt-4o")


def test_sdk_errors_carry_openai_codes(served: str) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk(served).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Who is Wang Lei?"}]
        )
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        ask(served, "   ")
    assert empty.value.code == "invalid_question"
    assert "Please type a question" in str(empty.value)
    with pytest.raises(openai.BadRequestError) as long:
        ask(served, "why " * 1000, stream=True)
    assert long.value.code == "invalid_question"
    with pytest.raises(openai.BadRequestError) as image:
        sdk(served).chat.completions.create(
            model="citeqa",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ],
        )
    assert image.value.code == "unsupported_content"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{oops", "json", 400, "invalid_json"),
        ("POST", "/v1/chat/completions", b"model=citeqa", "form", 415, "unsupported_media_type"),
        ("POST", "/v1/chat/completions", b"x" * 1_000_001, "json", 413, "request_too_large"),
        ("POST", "/v1/chat/completions", b'{"model": "citeqa"}', "json", 400, "invalid_value"),
        ("GET", "/v1/chat/completions", None, "json", 405, "bad_method"),
        ("GET", "/v1/embeddings", None, "json", 404, "unknown_url"),
    ],
)
def test_raw_errors_have_the_openai_shape_and_status(
    served: str,
    method: str,
    path: str,
    body: bytes | None,
    headers: str,
    status: int,
    code: str,
) -> None:
    kind = {"json": "application/json", "form": "application/x-www-form-urlencoded"}[headers]
    got, _, answer = raw(served, method, path, body, {"Content-Type": kind})
    assert got == status
    error = error_of(answer)
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"


def test_a_stream_is_server_sent_events_ending_with_done(served: str) -> None:
    body = json.dumps(
        {
            "model": "citeqa",
            "stream": True,
            "messages": [{"role": "user", "content": "Who is Wang Lei?"}],
        }
    ).encode()
    status, headers, answer = raw(
        served, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [e for e in answer.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    final = json.loads(events[-2][len("data: ") :])
    assert final["object"] == "chat.completion.chunk"
    assert final["citations"][0]["outlet"] == "Xinhua"


# ---- LangChain's ChatOpenAI ----


def test_langchain_chat_openai_pointed_at_citeqa(served: str) -> None:
    model = ChatOpenAI(
        model="citeqa", base_url=f"{served}/v1", api_key=SecretStr("not-needed"), max_retries=0
    )
    message = model.invoke("Who is Wang Lei?")
    assert isinstance(message.content, str)
    assert WANG_LEI in message.content
    assert f"[1] {XINHUA_TITLE} (Xinhua, 2024-03-19)" in message.content
    streamed = "".join(str(chunk.content) for chunk in model.stream("Who is Wang Lei?"))
    assert streamed == message.content


# ---- the MCP SDK's client ----


def with_mcp(
    base: str,
    use: Callable[[ClientSession], Awaitable[Any]],
    headers: dict[str, str] | None = None,
) -> Any:
    """Run `use` with an initialized MCP session to the app's /mcp."""

    async def run() -> Any:
        async with (
            httpx2.AsyncClient(headers=headers or {}, timeout=120) as http,
            streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await use(session)

    return asyncio.run(run())


def test_the_mcp_tools_answer_search_and_report(served: str) -> None:
    async def use(session: ClientSession) -> Any:
        tools = await session.list_tools()
        ask = await session.call_tool("ask", {"question": "Who is Wang Lei?"})
        search = await session.call_tool(
            "search_passages",
            {
                "query": "Wang Lei cyber",
                "limit": 3,
                "outlets": ["Xinhua"],
                "published_from": "2024-03-01",
                "published_to": "2024-03-31",
            },
        )
        nothing = await session.call_tool(
            "search_passages", {"query": "Wang Lei", "published_to": "2020-01-01"}
        )
        status = await session.call_tool("index_status", {})
        return tools, ask, search, nothing, status

    tools, ask_result, search, nothing, status = with_mcp(served, use)
    assert {t.name for t in tools.tools} == {"ask", "search_passages", "index_status"}
    assert not ask_result.is_error
    answer = ask_result.structured_content
    assert WANG_LEI in answer["answer"]
    assert "[1]" in answer["answer"]
    assert answer["covered"] is True
    cited = answer["citations"][0]
    assert (cited["marker"], cited["title"], cited["outlet"], cited["date"]) == (
        1,
        XINHUA_TITLE,
        "Xinhua",
        "2024-03-19",
    )
    assert cited["supporting_text"][0].startswith(WANG_LEI)
    assert json.loads(ask_result.content[0].text) == answer  # the same, for text-only clients
    passages = search.structured_content["passages"]
    assert passages
    assert {p["outlet"] for p in passages} == {"Xinhua"}
    assert passages[0]["rank"] == 1
    assert nothing.structured_content["passages"] == []
    report = status.structured_content
    assert report["articles"] >= 2
    assert {"name": "Xinhua", "articles": 1} in report["outlets"]
    assert report["embedding_model"] == "all-MiniLM-L6-v2"


def test_mcp_tool_mistakes_are_tool_errors(served: str) -> None:
    async def use(session: ClientSession) -> Any:
        return [
            await session.call_tool("ask", {"question": "  "}),
            await session.call_tool("ask", {"question": "Who?", "published_from": "March"}),
            await session.call_tool("search_passages", {"query": "Wang Lei", "limit": 99}),
        ]

    empty, bad_date, too_many = with_mcp(served, use)
    assert empty.is_error
    assert "Please type a question" in empty.content[0].text
    assert bad_date.is_error
    assert "must look like 2024-03-19" in bad_date.content[0].text
    assert too_many.is_error
    assert "limit must be between 1 and 20" in too_many.content[0].text


# ---- the login, the Host and the Origin ----


def test_the_login_guards_the_api_and_mcp(guarded: str) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(guarded, "wrong").models.list()
    assert refused.value.code == "invalid_api_key"
    status, headers, body = raw(guarded, "GET", "/v1/models")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="citeqa"'
    assert error_of(body)["code"] == "invalid_api_key"
    reply = complete(guarded, [{"role": "user", "content": "Who is Wang Lei?"}], PASSWORD)
    assert reply.model_extra["citations"][0]["outlet"] == "Xinhua"
    basic = base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert raw(guarded, "GET", "/v1/models", headers={"Authorization": f"Basic {basic}"})[0] == 200
    wrong_user = base64.b64encode(f"other:{PASSWORD}".encode()).decode()
    assert (
        raw(guarded, "GET", "/v1/models", headers={"Authorization": f"Basic {wrong_user}"})[0]
        == 401
    )
    status, _, body = raw(guarded, "POST", "/mcp", b"{}", {"Content-Type": "application/json"})
    assert status == 401
    assert json.loads(body)["error"]["data"]["reason"] == "invalid_api_key"

    async def use(session: ClientSession) -> Any:
        return await session.call_tool("ask", {"question": "Who is Wang Lei?"})

    answered = with_mcp(guarded, use, {"Authorization": f"Bearer {PASSWORD}"})
    assert answered.structured_content["citations"][0]["title"] == XINHUA_TITLE
    assert raw(guarded, "GET", "/gradio_api/info")[0] == 401  # the page's own login, unchanged


def test_other_hosts_and_web_origins_are_refused(served: str) -> None:
    port = urlsplit(served).port
    rebound = raw(served, "GET", "/v1/models", headers={"Host": f"evil.example:{port}"})
    assert rebound[0] == 403
    assert error_of(rebound[2])["code"] == "forbidden_host"
    foreign = raw(served, "GET", "/v1/models", headers={"Origin": "https://evil.example"})
    assert foreign[0] == 403
    assert error_of(foreign[2])["code"] == "forbidden_origin"
    same = raw(served, "GET", "/v1/models", headers={"Origin": served})
    assert same[0] == 200
    assert raw(served, "GET", "/v1/models", headers={"Host": f"localhost:{port}"})[0] == 200
    mcp = raw(served, "POST", "/mcp", b"{}", {"Origin": "https://evil.example"})
    assert mcp[0] == 403


# ---- the model, streamed ----


def test_a_model_answer_streams_checked(smol_chain: QAChain) -> None:
    demo, url = launch(smol_chain)
    try:
        base = url.rstrip("/")
        chunks = list(ask(base, "Who won Super Bowl 50?", stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        check = chunks[-1].model_extra["citeqa"]
        assert check["answered_by"] in ("local", "extractive")
        if check["covered"]:
            citations = chunks[-1].model_extra["citations"]
            assert citations
            for cited in citations:  # markers are passage numbers: [3] may come alone
                assert f"[{cited['marker']}]" in text.split("\n\nSources:")[0]
                assert f"\n- [{cited['marker']}] {cited['title']}" in text
        else:
            assert text == NOT_COVERED
    finally:
        demo.close()


# ---- one answer at a time ----


def test_the_runner_refuses_past_its_queue() -> None:
    gate = threading.Event()

    async def scenario() -> tuple[str, Exception | None]:
        runner = AnswerRunner(max_waiting=0)
        try:
            first = asyncio.ensure_future(runner.run(lambda cancelled: gate.wait(10) and "done"))
            await asyncio.sleep(0.05)
            refused: Exception | None = None
            try:
                await runner.run(lambda cancelled: "second")
            except BusyError as e:
                refused = e
            gate.set()
            return str(await first), refused
        finally:
            runner.close()

    first, refused = asyncio.run(scenario())
    assert first == "done"
    assert refused is not None
    assert "busy" in str(refused)

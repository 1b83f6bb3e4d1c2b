"""The offline guarantee.

- The tests' guard (`tests/offline_guard.py`, wired in `tests/conftest.py`) fails a test that
  tried to reach a non-loopback address even when the code under test swallowed the error: shown
  here by calling the guard directly and by a pytest run whose only test swallows its attempts.
- The real app (`python app.py`, SmolLM2 and fast mode) serves a 10-question session through
  `gradio_client` while a Python audit hook, installed before anything is imported, logs every
  socket connect, send, bind and name lookup, every HTTP connection and every process started:
  everything it reaches is loopback, and Gradio's analytics, telemetry and hub are never asked.
  The same app then answers through its chat API (the `openai` SDK, streamed and not) and its MCP
  server (the MCP SDK's client), still reaching nothing but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from gradio_client import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from index.offline import OFFLINE_ENV
from tests.conftest import ROOT, ReliabilityRow
from tests.offline_guard import OUTBOUND, OutboundConnectionError, is_loopback
from tests.support.servers import free_port, stop_process

# TEST-NET-1 (RFC 5737): never routed, so nothing is sent even if a guard failed.
NOWHERE = "192.0.2.1"
START_S = 240.0  # the app's start on a busy 2-core machine: imports, embedder, model, index

# ---- the tests' own guard ----


def swallow_outbound_attempts() -> None:
    """What careless code does: try the network and ignore every error."""
    with contextlib.suppress(Exception):
        socket.create_connection((NOWHERE, 9), timeout=1)  # pytest-socket refuses it
    with socket.socket() as sock, contextlib.suppress(Exception):
        sock.connect_ex((NOWHERE, 9))  # pytest-socket does not see connect_ex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, contextlib.suppress(Exception):
        sock.sendto(b"x", (NOWHERE, 53))
    with contextlib.suppress(Exception):
        socket.getaddrinfo("telemetry.outside.example", 443)


def test_the_guard_records_swallowed_attempts_and_fails_the_test() -> None:
    swallow_outbound_attempts()
    with pytest.raises(pytest.fail.Exception) as failure:
        OUTBOUND.check()  # what the autouse fixture does at teardown
    message = str(failure.value)
    assert "4 attempt(s)" in message
    assert f"socket.connect {NOWHERE}" in message  # pytest-socket's refusal, recorded
    assert f"socket.connect {NOWHERE}:9" in message  # connect_ex, refused by the audit hook
    assert f"socket.sendto {NOWHERE}:53" in message
    assert "socket.getaddrinfo telemetry.outside.example:443" in message
    OUTBOUND.check()  # taken: this test itself passes


def test_the_guard_refuses_what_pytest_socket_does_not_see() -> None:
    with socket.socket() as sock, pytest.raises(OutboundConnectionError):
        sock.connect_ex((NOWHERE, 9))
    with pytest.raises(OutboundConnectionError):
        socket.gethostbyname("outside.example")
    assert len(OUTBOUND.take()) == 2


def test_the_guard_lets_loopback_through() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    socket.getaddrinfo("localhost", 80)
    socket.getaddrinfo("93.184.215.14", 80)  # a numeric address: no lookup, no traffic
    assert OUTBOUND.take() == []
    for host in ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST.", "", None]:
        assert is_loopback(host), host
    for host in [NOWHERE, "10.0.0.1", "::ffff:192.0.2.1", "example.org", "localhost.example"]:
        assert not is_loopback(host), host
    assert is_loopback("::ffff:127.0.0.1")


SWALLOWING_TEST = """
import socket


def test_looks_fine():
    try:
        socket.create_connection(("192.0.2.1", 9), timeout=1)
    except Exception:
        pass  # swallowed: without the guard this test passes
"""


def test_a_test_that_swallows_an_outbound_attempt_fails(tmp_path: Path) -> None:
    """A real pytest run, with this suite's conftest as a plugin: the test body passes, and the
    guard turns its swallowed attempt into an error at teardown."""
    (tmp_path / "test_swallow.py").write_text(SWALLOWING_TEST, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
            "--allow-hosts=127.0.0.1,localhost,::1", "-q", "test_swallow.py",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "1 passed, 1 error" in output, output
    assert "ERROR at teardown of test_looks_fine" in output, output
    assert "socket.connect 192.0.2.1" in output, output


# ---- the app's own connections ----

# Runs first in the app's process: the hook logs, it does not block (the assertion is the
# test's), so the app behaves as it would on a connected machine.
AUDIT_LAUNCHER = """
import json, os, runpy, sys, threading

LOG = open(os.environ["CITEQA_TEST_AUDIT_LOG"], "a", buffering=1, encoding="utf-8")
EVENTS = {
    "socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "http.client.connect",
    "urllib.Request", "subprocess.Popen", "os.system", "webbrowser.open",
}
LOCK = threading.Lock()


def text(value):
    if isinstance(value, (bytes, str, int, float)) or value is None:
        return value if not isinstance(value, bytes) else value.decode("ascii", "replace")
    if isinstance(value, (tuple, list)):
        return [text(v) for v in value]
    return repr(value)[:200]


def hook(event, args):
    if event not in EVENTS:
        return
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"):
        family = getattr(args[0], "family", None)
        record = {"event": event, "family": int(family or 0), "address": text(args[1])}
    elif event == "http.client.connect":
        record = {"event": event, "address": [text(args[1]), text(args[2])]}
    elif event == "urllib.Request":
        record = {"event": event, "address": text(args[0])}
    elif event == "subprocess.Popen":
        record = {"event": event, "address": text(args[0]), "argv": text(args[1])}
    else:
        record = {"event": event, "address": text(args[0])}
    with LOCK:
        LOG.write(json.dumps(record) + "\\n")


sys.addaudithook(hook)
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

SESSION = [  # (question, fast mode): ten questions, follow-ups and both answer paths
    ("Who is Wang Lei?", True),
    ("What does China offer the EU in digital development?", False),
    ("And what did he say about cooperation?", True),
    ("What kind of economy does Victoria have?", False),
    ("When did the 1973 oil crisis begin?", True),
    ("What project put the first Americans into space?", False),
    ("What did Paul Baran develop?", True),
    ("Where did the black death originate?", False),
    ("How did it reach Europe?", True),
    ("What is the boiling point of mercury on Neptune's moons?", True),
]
# Hosts the app must never ask: Gradio's analytics and version check, Hugging Face's hub and
# telemetry, Chroma's telemetry, LangSmith tracing, font and CDN hosts.
NEVER = ("gradio", "huggingface", "hf.co", "posthog", "langchain", "langsmith", "google", "cdn")

# Processes the app may start: matplotlib lists the system fonts once per home folder.
LOCAL_TOOLS = frozenset({"fc-list"})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event: str
    address: Any
    family: int = 0
    argv: tuple[str, ...] = ()

    def starts_model_worker(self) -> bool:
        """The model's worker process: this Python, running qa/worker.py (its only child)."""
        return (
            self.event == "subprocess.Popen"
            and Path(str(self.address)).name.startswith("python")
            and any(Path(a).parts[-2:] == ("qa", "worker.py") for a in self.argv)
        )

    @property
    def host(self) -> object:
        if self.event in ("urllib.Request",):
            return str(self.address)
        if self.family == socket.AF_UNIX:
            return None
        if isinstance(self.address, list):
            return self.address[0] if self.address else None
        return self.address

    def local(self) -> bool:
        if self.family == socket.AF_UNIX or self.event in ("subprocess.Popen", "os.system"):
            return True
        if self.event == "socket.bind" and self.family not in (socket.AF_INET, socket.AF_INET6):
            return True  # netlink and the like: no address on any network
        if self.event == "urllib.Request":
            return False  # the app has no reason to fetch anything while answering
        return is_loopback(self.host)


@pytest.fixture(scope="module")
def audited_app(
    sample_index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`python app.py` on the sample index with SmolLM2, under the audit hook."""
    work = tmp_path_factory.mktemp("offline-app")
    launcher = work / "audited.py"
    launcher.write_text(AUDIT_LAUNCHER, encoding="utf-8")
    audit_log = work / "audit.jsonl"
    (work / "home").mkdir()  # a home folder of its own: no consent or cache files from earlier
    port = free_port()
    # The app must switch its libraries offline itself: none of the switches the tests set.
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    env.update(
        CITEQA_INDEX_DIR=str(sample_index),
        CITEQA_ARTICLES_DIR=str(work / "articles"),
        # A first start: models prepared anew (the embedding model converted for OpenVINO).
        CITEQA_MODEL_CACHE_DIR=str(work / "models"),
        HOME=str(work / "home"),
        CITEQA_LLM_MODEL="smollm2-135m",
        CITEQA_MAX_ANSWER_TOKENS="48",
        CITEQA_LLM_THREADS="2",
        CITEQA_PORT=str(port),
        CITEQA_TEST_AUDIT_LOG=str(audit_log),
        GRADIO_TEMP_DIR=str(work / "gradio"),
    )
    out = work / "app.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(launcher), str(ROOT / "app.py")],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_S
        while not page_answers(port):
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{tail(out)}")
            if time.monotonic() > deadline:
                pytest.fail(f"app.py not up after {START_S:g} s:\n{tail(out)}")
            time.sleep(0.5)
        yield url, audit_log, process
    finally:
        stop_process(process, timeout_s=20)


def page_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /config HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def read_audit(path: Path) -> list[AuditRecord]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        argv = tuple(str(a) for a in data.get("argv") or ())
        records.append(AuditRecord(data["event"], data["address"], data.get("family", 0), argv))
    return records


def test_a_ten_question_session_makes_no_outbound_connection(
    audited_app: tuple[str, Path, subprocess.Popen[bytes]],
    reliability: list[ReliabilityRow],
) -> None:
    url, audit_log, process = audited_app
    client = Client(url, verbose=False, analytics_enabled=False)
    client.predict(api_name="/index_status")
    answered = 0
    for question, fast in SESSION:
        chat, _, _, box = client.predict(question, fast, [], None, None, api_name="/ask")
        assert chat[-1]["role"] == "assistant"
        assert str(chat[-1]["content"]).strip()
        assert box == ""
        answered += 1
    assert len(chat) == 2 * len(SESSION)  # one conversation, every turn kept
    assert "Not covered by the articles" in str(chat[-1]["content"])
    assert "Wang Lei" in str(chat[1]["content"])
    client.predict(api_name="/new_conversation")
    assert process.poll() is None

    records = read_audit(audit_log)
    # The hook saw the app: its server bound the loopback port the client used.
    port = int(url.rsplit(":", 1)[1].strip("/"))
    assert any(r.event == "socket.bind" and r.address == ["127.0.0.1", port] for r in records)
    outbound = [r for r in records if not r.local()]
    named = [r for r in records if any(n in str(r.address).lower() for n in NEVER)]
    started = [
        r
        for r in records
        if r.event in ("subprocess.Popen", "os.system")
        and Path(str(r.address)).name not in LOCAL_TOOLS
        and not r.starts_model_worker()
    ]
    assert sum(r.starts_model_worker() for r in records) == 1  # started once, never restarted
    reliability.append(
        ReliabilityRow(
            part="offline app session",
            inputs=answered,
            errors=len(outbound),
            note=(
                f"python app.py (SmolLM2 + fast mode) under an audit hook: {len(records)} "
                f"socket/HTTP/process events, {len(outbound)} not loopback"
            ),
        )
    )
    assert outbound == [], outbound
    assert named == [], named
    assert started == [], started  # no helper (a share tunnel, a browser, a downloader)


def test_the_chat_api_and_mcp_reach_nothing_but_loopback(
    audited_app: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, audit_log, process = audited_app
    base = url.rstrip("/")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0)
    messages: Any = [{"role": "user", "content": "Who is Wang Lei?"}]
    reply = client.chat.completions.create(model="citeqa", messages=messages)
    assert reply.model_extra is not None
    assert reply.model_extra["citeqa"]["answered_by"] in ("local", "extractive")
    streamed = list(client.chat.completions.create(model="citeqa", messages=messages, stream=True))
    assert streamed[-1].choices[0].finish_reason == "stop"

    async def ask_over_mcp() -> Any:
        async with (
            streamable_http_client(f"{base}/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await session.call_tool("ask", {"question": "Who is Wang Lei?"})

    assert not asyncio.run(ask_over_mcp()).is_error
    assert process.poll() is None
    records = read_audit(audit_log)
    outbound = [r for r in records if not r.local()]
    named = [r for r in records if any(n in str(r.address).lower() for n in NEVER)]
    assert outbound == [], outbound
    assert named == [], named

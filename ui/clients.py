"""What the chat API (`ui.api`) and the MCP server (`ui.mcp_server`) share: who may call them,
and the thread their blocking answers run in.

`ClientAccess` guards both as ASGI middleware, in front of the app's own routes:
- with a login set (`CITEQA_AUTH_USERNAME`/`CITEQA_AUTH_PASSWORD`), a request must carry it, as
  HTTP Basic or as `Authorization: Bearer <password>`; else 401;
- a server bound to loopback answers only requests addressed to a loopback name (a web page
  cannot reach it through a DNS name of its own that points at 127.0.0.1: DNS rebinding), 403;
- a request from a web page of another origin (its browser sends `Origin`) is refused, 403.

`AnswerRunner` runs answers in one worker thread of their own (the chain blocks; the server's
event loop must not), one at a time, with at most `CITEQA_QUEUE_SIZE` waiting: past that a
request is refused at once (`BusyError`). A caller that goes away stops its answer at the next
piece the model writes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from qa import Answer, QAChain, Settings
from qa.catalog import is_loopback_host
from qa.errors import BusyError, GenerationError
from qa.prompt import History
from qa.retrieval import PassageFilter
from ui.forms import build_filter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# A refusal's body for one interface: (status, message, code) -> (JSON bytes).
Refusal = Callable[[int, str, str], bytes]
T = TypeVar("T")

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class ClientAccess:
    """ASGI middleware in front of the API and MCP routes: the login, the Host and the Origin
    checked (see the module's docstring); refusals are JSON bodies made by `refuse`."""

    def __init__(self, app: ASGIApp, settings: Settings, refuse: Refusal) -> None:
        self.app = app
        self.refuse = refuse
        self.username = settings.auth_username or ""
        secret = settings.auth_password.get_secret_value() if settings.auth_password else ""
        self.password = secret if self.username else ""
        self.loopback_only = is_loopback_host(settings.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.problem(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message, code = problem
        extra = [(b"www-authenticate", b'Basic realm="citeqa"')] if status == 401 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": self.refuse(status, message, code)})

    def problem(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """Why a request with these headers is refused (status, message, code), or None."""
        host = headers.get("host", "")
        if self.loopback_only and host_name(host) not in LOOPBACK_NAMES:
            return (
                403,
                "This server answers requests addressed to 127.0.0.1 or localhost only.",
                "forbidden_host",
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return (
                403,
                "Requests from web pages of other sites are refused.",
                "forbidden_origin",
            )
        if self.username and not self.allowed(headers.get("authorization", "")):
            return (
                401,
                "Log in: send the page's user name and password as HTTP Basic authentication, "
                "or the password as the API key (Authorization: Bearer <password>).",
                "invalid_api_key",
            )
        return None

    def allowed(self, authorization: str) -> bool:
        """Whether an `Authorization` header carries the login."""
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return secrets.compare_digest(value.encode(), self.password.encode())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            same_user = secrets.compare_digest(user.encode(), self.username.encode())
            same_password = secrets.compare_digest(password.encode(), self.password.encode())
            return same_user and same_password
        return False


def host_name(host: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, lower case."""
    return (urlsplit(f"//{host}").hostname or "").lower()


class AnswerRunner:
    """Runs blocking answers in one worker thread: one at a time, at most `max_waiting` more
    waiting (more: `BusyError`)."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citeqa-clients")
        self._admitted = 0

    @property
    def full(self) -> bool:
        return self._admitted > self.max_waiting

    def busy(self) -> BusyError:
        return BusyError(
            f"citeqa is busy: {self.max_waiting} questions are waiting already. Try again shortly."
        )

    async def run(self, work: Callable[[threading.Event], T]) -> T:
        """`work(cancelled)` in the worker thread; `cancelled` is set when the caller stops
        waiting (the client went away), for `work` to stop at its next step."""
        if self.full:
            raise self.busy()
        self._admitted += 1
        cancelled = threading.Event()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, work, cancelled)
        finally:
            cancelled.set()
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def answer_question(
    chain: QAChain,
    question: str,
    history: History = (),
    filters: PassageFilter | None = None,
    as_of: str | None = None,
) -> Callable[[threading.Event], Answer]:
    """The work of answering `question` for `AnswerRunner.run`: the chain's events read up to
    its checked `Answer`; when `cancelled` is set, the events are closed (the model stops)."""

    def work(cancelled: threading.Event) -> Answer:
        events = chain.events(question, history, (), filters, as_of)
        try:
            for event in events:
                if cancelled.is_set():
                    raise GenerationError("The client stopped waiting for the answer.")
                if isinstance(event, Answer):
                    return event
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # a generator: stop the model's answer too
                close()
        raise GenerationError("The chain ended without an answer.")  # pragma: no cover

    return work


def passage_filter(
    outlets: Collection[str] | None, published_from: str | None, published_to: str | None
) -> PassageFilter | None:
    """The retrieval filter for a client's outlets and ISO dates (both included), or None when
    nothing is filtered; `ValueError` for a date that is not YYYY-MM-DD or dates out of order."""
    return build_filter(list(outlets or ()), published_from, published_to)

"""Serving the page safely: loopback unless a login is set, no share link, analytics, Gradio's
MCP or remote file fetches, capped request bodies, and the index, articles and model folders
blocked from the file routes; and beside the page, on the same server and behind the same login,
the chat API (`ui.api`, at /v1) and the MCP server (`ui.mcp_server`, at /mcp)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from qa import QAChain, Settings
from qa.catalog import is_loopback_host
from ui.api import chat_api_routes
from ui.clients import AnswerRunner
from ui.mcp_server import mcp_routes
from ui.render import CSS, HEAD

# Every request body, uploads included, is refused past this many upload-size units (413).
BODY_LIMIT_UPLOADS = 10

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RefuseRemoteFiles:
    """ASGI middleware: Gradio's file route fetches any public URL it is given
    (`/gradio_api/file=https://...`) and its proxy route forwards to configured hosts; this page
    serves no remote files, so those requests get 403 without leaving the machine."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_remote_file_path(str(scope.get("path", ""))):
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Remote files are not served."})
            return
        await self.app(scope, receive, send)


def is_remote_file_path(path: str) -> bool:
    """Whether a request path asks the file routes for a URL rather than a file."""
    match = re.search(r"/(?:file|proxy)[=/](.*)$", path, flags=re.IGNORECASE | re.DOTALL)
    return bool(match and re.match(r"\s*[a-z][a-z0-9+.\-]*:/", match.group(1), re.IGNORECASE))


def exposure_problem(settings: Settings) -> str | None:
    """Why the page must not start with these settings, or None."""
    has_user = bool(settings.auth_username)
    has_password = settings.auth_password is not None and bool(
        settings.auth_password.get_secret_value()
    )
    if has_user != has_password:
        return "Set both CITEQA_AUTH_USERNAME and CITEQA_AUTH_PASSWORD, or neither."
    if not is_loopback_host(settings.host) and not has_user:
        return (
            f"CITEQA_HOST={settings.host} opens the page to the network; set "
            "CITEQA_AUTH_USERNAME and CITEQA_AUTH_PASSWORD so that it asks for a login, or "
            "keep CITEQA_HOST=127.0.0.1."
        )
    return None


def launch_options(settings: Settings) -> dict[str, Any]:
    """How the page is served: `settings.host` only, no share link, no analytics, monitoring,
    MCP, PWA or run history, uploads capped, only Gradio's own upload cache served by the file
    routes (the index, articles and model folders explicitly blocked), remote file fetches
    refused, and a login when a username and password are set."""
    auth = None
    if settings.auth_username and settings.auth_password is not None:
        auth = (settings.auth_username, settings.auth_password.get_secret_value())
    blocked = [settings.index_dir, settings.articles_dir, settings.model_cache_dir]
    body_limit = (BODY_LIMIT_UPLOADS * settings.max_upload_mb + 1) * 1_000_000
    return {
        "server_name": settings.host,
        "share": False,
        "auth": auth,
        "auth_message": "citeqa: log in to ask questions about the articles." if auth else None,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "allowed_paths": [],
        "blocked_paths": [str(Path(p).resolve()) for p in blocked],
        "show_error": False,
        "footer_links": [],
        "run_history": False,
        "mcp_server": False,
        "ssr_mode": False,
        "pwa": False,
        "enable_monitoring": False,
        "strict_cors": True,
        # FastAPI takes (class, args, kwargs) triples as middleware.
        "app_kwargs": {
            "middleware": [(RefuseRemoteFiles, (), {})],
            "max_body_size": body_limit,
        },
        "theme": gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),
        "css": CSS,
        "head": HEAD,
    }


def client_services(chain: QAChain, settings: Settings) -> dict[str, Any]:
    """The app's routes for other clients, the chat API at /v1 and MCP at /mcp (both behind
    `ui.clients.ClientAccess`), and the lifespan they need (the MCP SDK's session manager; the
    answers' thread stopped at the end): FastAPI arguments, for `app_kwargs`."""
    runner = AnswerRunner(settings.queue_size)
    mcp, mcp_running = mcp_routes(chain, runner, settings)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            async with mcp_running():
                yield
        finally:
            runner.close()

    return {"routes": [*chat_api_routes(chain, runner, settings), *mcp], "lifespan": lifespan}


def launch_demo(
    demo: gr.Blocks,
    settings: Settings,
    *,
    port: int | None = None,
    block: bool = True,
    quiet: bool = False,
    chain: QAChain | None = None,
) -> str:
    """Serve `demo` as `launch_options` says, with a bounded queue (one answer at a time, at
    most `queue_size` waiting); the local URL. `port=None`: the first free port from 7860.
    `block=False` returns at once (the caller closes the demo). With `chain`, the chat API and
    the MCP server answer from it beside the page (`client_services`)."""
    problem = exposure_problem(settings)
    if problem:
        raise ValueError(problem)
    demo.queue(default_concurrency_limit=1, max_size=settings.queue_size, api_open=False)
    options = launch_options(settings)
    if chain is not None:
        options["app_kwargs"].update(client_services(chain, settings))
    _, url, _ = demo.launch(
        server_port=port,
        prevent_thread_lock=not block,
        quiet=quiet,
        **options,
    )
    return str(url)

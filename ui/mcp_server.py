"""The MCP server, streamable HTTP at `/mcp` beside the page, built with the official MCP SDK (the
only importer of `mcp`): tools to ask a question, to search passages and to read the index's
status. Each tool answers with structured data (and the same as JSON text for clients that read
only text).

It is served by the page's own server, behind `ui.clients.ClientAccess` (the page's login, loopback
Host names, no other web origins) and the SDK's own Host and Origin checks; answers run in the
shared `AnswerRunner`. Stateless: every request stands alone (no session state to keep or leak)
and answers with plain JSON.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.routing import BaseRoute, Route

from qa import Answer, QAChain, Settings
from qa.catalog import index_status
from qa.citations import citation_record
from qa.errors import CiteqaError
from qa.openai_format import check_record
from qa.types import RetrievedChunk
from ui.clients import AnswerRunner, ClientAccess, answer_question, passage_filter

MCP_PATH = "/mcp"
MAX_PASSAGES = 20
INSTRUCTIONS = (
    "citeqa answers questions from a local index of news articles. Every claim in an answer "
    "carries a [n] marker whose citation names the article (title, outlet, date, URL) and quotes "
    "the passage text that backs it. Use `ask` for answers, `search_passages` to read the "
    "passages themselves, `index_status` to see what the index holds. An answer with "
    "covered=false means the articles do not cover the question."
)
FILTERS_HELP = (
    "Optional filters: `outlets` (names as `index_status` lists them; none: all), "
    "`published_from` and `published_to` (YYYY-MM-DD, both included)."
)


def jsonrpc_refusal(status: int, message: str, code: str) -> bytes:
    """The body `ClientAccess` sends when it refuses an MCP request: a JSON-RPC error."""
    error = {"code": -32001, "message": message, "data": {"status": status, "reason": code}}
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode("utf-8")


def ask_record(answer: Answer) -> dict[str, Any]:
    """The `ask` tool's result: the answer's text with its markers, its citations, the check."""
    return {
        "answer": answer.text,
        **check_record(answer),
        "citations": [citation_record(c) for c in answer.citations],
    }


def passage_record(hit: RetrievedChunk) -> dict[str, Any]:
    chunk = hit.chunk
    return {
        "rank": hit.rank,
        "article_id": chunk.article_id,
        "title": chunk.title,
        "outlet": chunk.source,
        "date": chunk.published,
        "url": chunk.url,
        "passage": chunk.text,
        "similarity": round(hit.similarity, 4),
        "score": round(hit.score, 4),
    }


def build_mcp_server(chain: QAChain, runner: AnswerRunner) -> MCPServer:
    """The MCP server for `chain`, with its three tools."""
    server: MCPServer = MCPServer(
        name="citeqa", instructions=INSTRUCTIONS, log_level="WARNING", version="0.1.0"
    )

    def filters_of(
        outlets: list[str] | None, published_from: str | None, published_to: str | None
    ) -> Any:
        try:
            return passage_filter(outlets, published_from, published_to)
        except ValueError as e:
            raise ToolError(str(e)) from e

    @server.tool(
        name="ask",
        description="Answer a question from the indexed news articles. The answer's claims carry "
        "[n] markers; `citations` gives each marker's article (title, outlet, date, url), the "
        "passage and the text in it that backs the claim (`supporting_text`). covered=false: "
        "the articles do not cover it. `as_of` (YYYY-MM-DD, default today) is the date the "
        "question is asked on: nothing newer is used and 'this week' ends there. " + FILTERS_HELP,
    )
    async def ask(
        question: str,
        outlets: list[str] | None = None,
        published_from: str | None = None,
        published_to: str | None = None,
        as_of: str | None = None,
    ) -> dict[str, Any]:
        filters = filters_of(outlets, published_from, published_to)
        try:
            answer = await runner.run(answer_question(chain, question, (), filters, as_of))
        except CiteqaError as e:
            raise ToolError(str(e)) from e
        return ask_record(answer)

    @server.tool(
        name="search_passages",
        description="The indexed passages that best match `query`, best first (at most `limit`, "
        f"1 to {MAX_PASSAGES}), with their article's title, outlet, date and url. " + FILTERS_HELP,
    )
    async def search_passages(
        query: str,
        limit: int = 5,
        outlets: list[str] | None = None,
        published_from: str | None = None,
        published_to: str | None = None,
    ) -> dict[str, Any]:
        if not query.strip():
            raise ToolError("Give a query: the words or question to search the passages for.")
        if not 1 <= limit <= MAX_PASSAGES:
            raise ToolError(f"limit must be between 1 and {MAX_PASSAGES}.")
        filters = filters_of(outlets, published_from, published_to)

        def search(cancelled: threading.Event) -> tuple[RetrievedChunk, ...]:
            return chain.retriever.search(query, limit, (), filters).passages

        try:
            passages = await runner.run(search)
        except CiteqaError as e:
            raise ToolError(str(e)) from e
        return {"query": query, "passages": [passage_record(hit) for hit in passages]}

    @server.tool(
        name="index_status",
        description="What the index holds: articles, chunks, the last sync, the embedding "
        "model, the outlets with their article counts, and who writes the answers.",
    )
    async def status() -> dict[str, Any]:
        try:
            stats = await asyncio.to_thread(index_status, chain.retriever.store)
        except CiteqaError as e:
            raise ToolError(str(e)) from e
        fingerprint = stats.fingerprint
        return {
            "articles": stats.articles,
            "chunks": stats.chunks,
            "last_sync": stats.built_at or None,
            "build": stats.build_id,
            "embedding_model": fingerprint.embedding_model,
            "dimension": fingerprint.dimension,
            "outlets": [{"name": name, "articles": count} for name, count in stats.sources],
            "answered_by": chain.backend,
        }

    return server


def mcp_routes(
    chain: QAChain, runner: AnswerRunner, settings: Settings
) -> tuple[list[BaseRoute], Callable[[], AbstractAsyncContextManager[None]]]:
    """The route serving MCP at `MCP_PATH`, behind `ClientAccess`, and what must run while it
    serves (the SDK's session manager: enter it in the server's lifespan)."""
    server = build_mcp_server(chain, runner)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        host=settings.host,
    )
    endpoints = [r.endpoint for r in app.routes if isinstance(r, Route) and r.path == MCP_PATH]
    if len(endpoints) != 1:  # pragma: no cover (a new SDK laid its app out differently)
        raise RuntimeError(f"The MCP SDK's app has no single route at {MCP_PATH}.")
    guarded = ClientAccess(endpoints[0], settings, jsonrpc_refusal)
    return [Route(MCP_PATH, endpoint=guarded)], server.session_manager.run

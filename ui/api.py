"""The OpenAI-compatible chat API, served under `/v1` beside the page: `GET /v1/models`,
`GET /v1/models/citeqa` and `POST /v1/chat/completions`, streamed (server-sent events) or not.

The translation is `qa.openai_format`'s; this module is the web side (Starlette, the only
importer of it besides `ui.mcp_server`): reading the body (JSON, at most `MAX_BODY_BYTES`),
running the chain in `AnswerRunner`'s thread, and errors as OpenAI shapes them, each with its
status. A stream sends the assistant's role at once, keep-alive comments while the answer is
written and checked, then the checked answer in pieces and a last chunk with its citations: text
once sent cannot be taken back, so the unchecked draft is never streamed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from qa import Answer, QAChain, Settings
from qa.chain import check_question
from qa.errors import BusyError, ChatRequestError, CiteqaError, QuestionError
from qa.openai_format import (
    MODEL_ID,
    answer_chunks,
    completion,
    error_body,
    first_chunk,
    model_list,
    model_record,
    read_chat_request,
)
from ui.clients import AnswerRunner, ClientAccess, answer_question

log = logging.getLogger(__name__)

API_PATH = "/v1"
MAX_BODY_BYTES = 1_000_000  # a chat request: the conversation's text, not files
KEEPALIVE_S = 5.0  # a comment line this often while the answer is being written and checked
FAILURE = "Something went wrong while answering; the details are in the server log."


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status)


def refusal_body(status: int, message: str, code: str) -> bytes:
    """The body `ui.clients.ClientAccess` sends when it refuses a request to the API."""
    return json.dumps(error_body(status, message, code=code)).encode("utf-8")


def failure(error: BaseException) -> tuple[int, str, str | None, str]:
    """What a failed answer becomes: (status, message, param, code)."""
    if isinstance(error, ChatRequestError):
        return error.status, str(error), error.param, error.code
    if isinstance(error, QuestionError):
        return 400, str(error), "messages", "invalid_question"
    if isinstance(error, BusyError):
        return 429, str(error), None, "busy"
    if isinstance(error, CiteqaError):  # the index or model cannot be used: says what to do
        log.warning("answering for a client failed: %s", error)
        return 500, str(error), None, "citeqa_error"
    log.error("answering for a client failed", exc_info=error)
    return 500, FAILURE, None, "internal_error"


@dataclass(frozen=True, slots=True)
class Ids:
    """What every chunk of one completion repeats: its id, creation time and model."""

    id: str
    created: int
    model: str


class ChatAPI:
    """The routes' handlers for one chain."""

    def __init__(self, chain: QAChain, runner: AnswerRunner, model_id: str = MODEL_ID) -> None:
        self.chain = chain
        self.runner = runner
        self.model_id = model_id
        self.created = int(time.time())

    async def models(self, request: Request) -> Response:
        return JSONResponse(model_list(self.created, self.model_id))

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self.model_id:
            return error_response(
                404,
                f"The model {name[:100]!r} does not exist; this server answers as "
                f"{self.model_id!r}.",
                param="model",
                code="model_not_found",
            )
        return JSONResponse(model_record(self.created, self.model_id))

    async def chat(self, request: Request) -> Response:
        try:
            body = await read_json(request)
            query = read_chat_request(body, self.model_id)
            # Checked here too, so that a stream never starts for a question that cannot be asked.
            check_question(query.question, self.chain.settings.max_question_chars)
        except (ChatRequestError, QuestionError) as e:
            status, message, param, code = failure(e)
            return error_response(status, message, param=param, code=code)
        work = answer_question(self.chain, query.question, query.history, as_of=query.as_of)
        ids = Ids(f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), query.model)
        if not query.stream:
            try:
                answer = await self.runner.run(work)
            except Exception as e:
                status, message, param, code = failure(e)
                return error_response(status, message, param=param, code=code)
            return JSONResponse(
                completion(answer, completion_id=ids.id, created=ids.created, model=ids.model)
            )
        if self.runner.full:
            status, message, param, code = failure(self.runner.busy())
            return error_response(status, message, param=param, code=code)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            self.events(work, ids), media_type="text/event-stream", headers=headers
        )

    async def events(
        self, work: Callable[[threading.Event], Answer], ids: Ids
    ) -> AsyncIterator[bytes]:
        """The stream: the role, keep-alive comments until the checked answer is there, its
        text in pieces, the last chunk with its citations, `[DONE]`. A failure after the stream
        began is an `error` event, as OpenAI sends them."""
        yield sse(first_chunk(completion_id=ids.id, created=ids.created, model=ids.model))
        task: asyncio.Task[Answer] = asyncio.ensure_future(self.runner.run(work))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_S)
                if done:
                    break
                yield b": citeqa is writing and checking the answer\n\n"
            try:
                answer = task.result()
            except Exception as e:
                status, message, param, code = failure(e)
                yield sse(error_body(status, message, param=param, code=code))
            else:
                pieces = answer_chunks(
                    answer, completion_id=ids.id, created=ids.created, model=ids.model
                )
                for piece in pieces:
                    yield sse(piece)
            yield b"data: [DONE]\n\n"
        finally:
            task.cancel()  # the client went away: the answer stops at the model's next piece


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


async def read_json(request: Request) -> object:
    """The request's JSON body; `ChatRequestError` for another media type (415), a body over
    `MAX_BODY_BYTES` (413) or one that is not JSON (400)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ChatRequestError(
            "Send the request as JSON (Content-Type: application/json).",
            code="unsupported_media_type",
            status=415,
        )
    too_big = ChatRequestError(
        f"The request is larger than {MAX_BODY_BYTES:,} bytes.",
        code="request_too_large",
        status=413,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for piece in request.stream():
        body.extend(piece)
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ChatRequestError(
            f"The request body is not valid JSON ({str(e)[:120]}).", code="invalid_json"
        ) from e


async def not_found(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 404
    if status == 405:
        return error_response(405, f"{request.method} is not allowed here.", code="bad_method")
    return error_response(
        status,
        f"No such endpoint: {request.url.path}. citeqa serves /v1/models and /v1/chat/completions.",
        code="unknown_url",
    )


def chat_api_app(chain: QAChain, runner: AnswerRunner, model_id: str = MODEL_ID) -> Starlette:
    """The `/v1` app (to mount at `/v1`): the models and chat completions for `chain`."""
    api = ChatAPI(chain, runner, model_id)
    routes = [
        Route("/models", api.models, methods=["GET"]),
        Route("/models/{model:path}", api.model, methods=["GET"]),
        Route("/chat/completions", api.chat, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def chat_api_routes(chain: QAChain, runner: AnswerRunner, settings: Settings) -> list[BaseRoute]:
    """The API mounted at `API_PATH`, behind `ClientAccess` (login, Host, Origin)."""
    guarded = ClientAccess(chat_api_app(chain, runner), settings, refusal_body)
    return [Mount(API_PATH, app=guarded)]

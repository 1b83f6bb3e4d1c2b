"""OpenAI's chat-completions format, both ways: a request read into citeqa's question and history,
and an `Answer` written as a completion, as stream chunks, and errors as OpenAI shapes them.

Pure functions on plain values (no web framework, no vendor library): `ui.api` serves them.

What a client gets: the checked answer's text with its `[n]` markers, then any notes (why the
extractive answer was given, sentences no article backs) and a short "Sources:" list, so that a
client that shows only the text still shows where each claim comes from; and the same sources in
full in the `citations` field (title, outlet, date, URL, passage, supporting text), with
`citeqa` holding the rest of the check (covered, notice, unsupported sentences, who answered).
A "not covered" answer is an ordinary completion with `citeqa.covered` false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qa.citations import SOURCES_HEADING, citation_record, sources_list
from qa.errors import ChatRequestError
from qa.types import Answer
from qa.when import parse_as_of

MODEL_ID = "citeqa"  # the one model a client can name: the index, answered with citations
OWNER = "citeqa"
MAX_HISTORY_CHARS = 2000  # of each earlier answer sent back with a follow-up (as on the page)
NOTE_PREFIX = "Note: "
UNSUPPORTED_PREFIX = "Unsupported by the articles: "
CHUNK_CHARS = 48  # the checked answer is streamed in pieces of about this many characters
History = Sequence[tuple[str, str]]  # (question, answer) pairs, as `qa.prompt` takes them
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Text that citeqa adds after an answer: cut from earlier replies a client sends back as history.
_ADDED = (f"\n\n{NOTE_PREFIX}", f"\n\n{UNSUPPORTED_PREFIX}", f"\n\n{SOURCES_HEADING}\n")


@dataclass(frozen=True, slots=True)
class ChatQuery:
    """What a chat request asks: the question (the last user message), the earlier turns as
    (question, answer) pairs, and whether the answer is streamed."""

    model: str
    question: str
    history: History
    stream: bool
    as_of: str | None = None  # the date the question is asked on (YYYY-MM-DD); None: today


# ---- requests ----


def read_chat_request(
    body: object, model_id: str = MODEL_ID, max_history_chars: int = MAX_HISTORY_CHARS
) -> ChatQuery:
    """The question and history of a decoded `/v1/chat/completions` body; `ChatRequestError`
    (400, or 404 for another model) saying what is wrong. System and developer messages are
    left out (citeqa's own rules apply), and so are tool messages; each earlier user message is
    paired with the assistant reply that follows it, that reply without what citeqa added after
    its text (notes, sources) and cut to `max_history_chars`."""
    if not isinstance(body, Mapping):
        raise ChatRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ChatRequestError(
            f'Name the model: "model": "{model_id}".', param="model", code="missing_model"
        )
    if model != model_id:
        raise ChatRequestError(
            f"The model {model[:100]!r} does not exist; this server answers as {model_id!r}.",
            param="model",
            code="model_not_found",
            status=404,
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise ChatRequestError('"stream" must be true or false.', param="stream")
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise ChatRequestError("citeqa gives one answer per request (n = 1).", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError(
            "Send the conversation as a non-empty list of messages.", param="messages"
        )
    turns = [read_message(m, i) for i, m in enumerate(messages)]
    role, question = turns[-1]
    if role != "user":
        raise ChatRequestError(
            "The last message must be the user's question.",
            param=f"messages[{len(turns) - 1}].role",
        )
    history: list[tuple[str, str]] = []
    asked: str | None = None
    for role, text in turns[:-1]:
        if role == "user":
            asked = text
        elif role == "assistant" and asked is not None:
            history.append((asked, answer_text_of(text)[:max_history_chars]))
            asked = None
    return ChatQuery(
        model=model,
        question=question,
        history=tuple(history),
        stream=bool(stream),
        as_of=read_as_of(body.get("as_of")),
    )


def read_as_of(value: object) -> str | None:
    """The request's `as_of` (an extra field: `extra_body={"as_of": "2024-03-20"}` in the
    `openai` SDK) as an ISO date; None when absent."""
    if value is None or value == "":
        return None
    try:
        return parse_as_of(str(value)).isoformat()
    except ValueError as e:
        raise ChatRequestError(str(e), param="as_of", code="invalid_as_of") from e


def read_message(message: object, index: int) -> tuple[str, str]:
    """A message's role and text: `content` as a string or a list of text parts."""
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ChatRequestError(f"Each message must be an object ({where}).", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise ChatRequestError(
            f"Unknown role {str(role)[:40]!r} in {where}; use user, assistant or system.",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is None or isinstance(content, str):
        return str(role), content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise ChatRequestError(
                    f"citeqa reads text only; {where} holds a {str(kind)[:40]!r} part.",
                    param=f"{where}.content",
                    code="unsupported_content",
                )
            texts.append(str(part.get("text") or ""))
        return str(role), "\n".join(texts)
    raise ChatRequestError(
        f"The content of {where} must be text or a list of text parts.", param=f"{where}.content"
    )


def answer_text_of(content: str) -> str:
    """An earlier reply as the chain wants it in history: its answer text, without the notes and
    sources that citeqa put after it."""
    cut = min((i for i in (content.find(mark) for mark in _ADDED) if i >= 0), default=-1)
    return (content[:cut] if cut >= 0 else content).strip()


# ---- answers ----


def message_text(answer: Answer) -> str:
    """The reply a chat client shows: the answer's text with its markers, any notice and
    unsupported sentences, then the sources."""
    parts = [answer.text]
    if answer.notice:
        parts.append(NOTE_PREFIX + " ".join(answer.notice.split()))
    parts.extend(UNSUPPORTED_PREFIX + s for s in answer.unsupported)
    listed = sources_list(answer.citations)
    if listed:
        parts.append(listed)
    return "\n\n".join(parts)


def check_record(answer: Answer) -> dict[str, Any]:
    """The `citeqa` field: what the citation check and the chain say about the answer."""
    return {
        "covered": answer.covered,
        "refused": answer.refused,
        "answered_by": answer.backend,
        "notice": answer.notice,
        "unsupported": list(answer.unsupported),
        "searched_for": answer.standalone_question,
        "as_of": answer.as_of,
        "searched_days": answer.time_scope,
    }


def completion(answer: Answer, *, completion_id: str, created: int, model: str) -> dict[str, Any]:
    """A `chat.completion` object for `answer`, with `citations` and `citeqa` beside `choices`."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": message_text(answer)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "citations": [citation_record(c) for c in answer.citations],
        "citeqa": check_record(answer),
    }


def chunk(
    *,
    completion_id: str,
    created: int,
    model: str,
    delta: Mapping[str, Any],
    finish_reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    record: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "delta": dict(delta), "finish_reason": finish_reason, "logprobs": None}
        ],
    }
    record.update(extra or {})
    return record


def first_chunk(*, completion_id: str, created: int, model: str) -> dict[str, Any]:
    """The stream's first chunk, sent at once: the assistant's role, no text yet."""
    return chunk(
        completion_id=completion_id,
        created=created,
        model=model,
        delta={"role": "assistant", "content": ""},
    )


def answer_chunks(
    answer: Answer, *, completion_id: str, created: int, model: str
) -> list[dict[str, Any]]:
    """The checked answer as stream chunks: its reply text in pieces, then a last chunk with
    `finish_reason` "stop", `citations` and `citeqa`."""
    pieces = [
        chunk(completion_id=completion_id, created=created, model=model, delta={"content": p})
        for p in split_text(message_text(answer))
    ]
    extra = {
        "citations": [citation_record(c) for c in answer.citations],
        "citeqa": check_record(answer),
    }
    last = chunk(
        completion_id=completion_id,
        created=created,
        model=model,
        delta={},
        finish_reason="stop",
        extra=extra,
    )
    return [*pieces, last]


def split_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """`text` in pieces of about `size` characters, cut after whitespace (joined, the text)."""
    pieces: list[str] = []
    current = ""
    for word in _words(text):
        if current and len(current) + len(word) > size:
            pieces.append(current)
            current = ""
        current += word
    if current:
        pieces.append(current)
    return pieces


def _words(text: str) -> list[str]:
    words: list[str] = []
    start = 0
    for i, char in enumerate(text):
        if char.isspace() and (i + 1 == len(text) or not text[i + 1].isspace()):
            words.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        words.append(text[start:])
    return words


# ---- models and errors ----


def model_record(created: int, model_id: str = MODEL_ID) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


def model_list(created: int, model_id: str = MODEL_ID) -> dict[str, Any]:
    return {"object": "list", "data": [model_record(created, model_id)]}


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`; the type follows
    from the status (`server_error` for 5xx)."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}

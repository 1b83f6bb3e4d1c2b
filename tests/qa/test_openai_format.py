"""The chat API's translation, both ways: requests read into a question and its history, answers
written as completions and stream chunks, errors in OpenAI's shape (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from index.types import Chunk
from qa import NOT_COVERED, Answer
from qa.citations import citation_record, markdown_text, plain_url, sources_list
from qa.errors import ChatRequestError
from qa.openai_format import (
    MODEL_ID,
    answer_chunks,
    answer_text_of,
    completion,
    error_body,
    first_chunk,
    message_text,
    model_list,
    read_chat_request,
    split_text,
)
from qa.types import CheckedSentence, Citation, RetrievedChunk
from tests.support.citations import PASSAGE, SPAN, xinhua_citation

CITATION = xinhua_citation(start=0, support=0.9912)
TEXT = "Wang Lei is the coordinator for cyber and digital affairs [1]. He spoke in Paris."
ANSWER = Answer(
    question="Who is Wang Lei?",
    text=TEXT,
    citations=(CITATION,),
    retrieved=(),
    sentences=(
        CheckedSentence(
            "Wang Lei is the coordinator for cyber and digital affairs.", (1,), True, 0.9
        ),
        CheckedSentence("He spoke in Paris.", (), False, 0.2),
    ),
    backend="extractive",
    notice="The language model took longer than 60 s, so these are the best sentences instead.",
)
NOT = Answer(
    question="What is the best recipe for banana bread?",
    text=NOT_COVERED,
    citations=(),
    retrieved=(
        RetrievedChunk(Chunk("c", "a", 0, "Bread.", 0, 6, "Baking", "Outlet"), 0.1, 1, 0.1),
    ),
    covered=False,
)


def request(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "messages": list(messages), **fields}


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


# ---- requests ----


def test_the_last_user_message_is_the_question_and_earlier_pairs_the_history() -> None:
    earlier = message_text(ANSWER)
    query = read_chat_request(
        request(
            {"role": "system", "content": "You are a pirate."},
            user("Who is Wang Lei?"),
            assistant(earlier),
            user("An unanswered question"),
            user("Who won Super Bowl 50?"),
            assistant("Denver [1].\n\nSources:\n- [1] Super Bowl 50 (Wikipedia)"),
            {"role": "tool", "content": "ignored", "tool_call_id": "x"},
            user([{"type": "text", "text": "And when"}, {"type": "text", "text": "was it?"}]),
            stream=True,
        )
    )
    assert query.question == "And when\nwas it?"
    assert query.history == (("Who is Wang Lei?", TEXT), ("Who won Super Bowl 50?", "Denver [1]."))
    assert query.stream is True
    assert query.model == MODEL_ID


def test_earlier_answers_are_cut_to_the_history_limit() -> None:
    query = read_chat_request(
        request(user("q"), assistant("x" * 5000), user("next")), max_history_chars=100
    )
    assert query.history == (("q", "x" * 100),)


def test_what_citeqa_added_to_a_reply_is_not_history() -> None:
    assert answer_text_of(message_text(ANSWER)) == TEXT
    assert answer_text_of(NOT_COVERED) == NOT_COVERED
    assert answer_text_of("Plain reply from elsewhere.") == "Plain reply from elsewhere."


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ([], 400, None, "invalid_value"),
        ({"messages": [user("q")]}, 400, "model", "missing_model"),
        ({"model": "gpt-4o", "messages": [user("q")]}, 404, "model", "model_not_found"),
        (request(), 400, "messages", "invalid_value"),
        ({"model": MODEL_ID, "messages": "q"}, 400, "messages", "invalid_value"),
        (request(user("q"), assistant("a")), 400, "messages[1].role", "invalid_value"),
        (request({"role": "wizard", "content": "q"}), 400, "messages[0].role", "invalid_value"),
        (request("just text"), 400, "messages[0]", "invalid_value"),
        (request(user(42)), 400, "messages[0].content", "invalid_value"),
        (
            request(user([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])),
            400,
            "messages[0].content",
            "unsupported_content",
        ),
        (request(user("q"), n=2), 400, "n", "invalid_value"),
        (request(user("q"), stream="yes"), 400, "stream", "invalid_value"),
    ],
)
def test_requests_that_cannot_be_answered_say_why(
    body: object, status: int, param: str | None, code: str
) -> None:
    with pytest.raises(ChatRequestError) as raised:
        read_chat_request(body)
    assert (raised.value.status, raised.value.param, raised.value.code) == (status, param, code)
    assert str(raised.value)


# ---- answers ----


def test_the_reply_keeps_its_markers_then_notes_then_sources() -> None:
    assert message_text(ANSWER) == (
        f"{TEXT}\n\n"
        "Note: The language model took longer than 60 s, so these are the best sentences "
        "instead.\n\n"
        "Unsupported by the articles: He spoke in Paris.\n\n"
        "Sources:\n"
        "- [1] China offers opportunities for EU's digital development, says diplomat "
        "(Xinhua, 2024-03-19) https://english.news.cn/20240319/x.html"
    )
    assert message_text(NOT) == NOT_COVERED


def test_a_completion_carries_the_citations_and_the_check() -> None:
    body = completion(ANSWER, completion_id="chatcmpl-1", created=7, model=MODEL_ID)
    assert body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": message_text(ANSWER)}
    assert choice["finish_reason"] == "stop"
    (cited,) = body["citations"]
    assert cited == {
        "marker": 1,
        "article_id": "xinhua-1",
        "title": CITATION.title,
        "outlet": "Xinhua",
        "date": "2024-03-19",
        "url": CITATION.url,
        "passage": PASSAGE,
        "supporting_text": [
            "Wang Lei, coordinator for cyber and digital affairs, made the remarks in Brussels."
        ],
        "spans": [list(SPAN)],
        "support": 0.991,
    }
    assert body["citeqa"] == {
        "covered": True,
        "refused": None,
        "answered_by": "extractive",
        "notice": ANSWER.notice,
        "unsupported": ["He spoke in Paris."],
        "searched_for": None,
        "as_of": None,
        "searched_days": None,
    }


def test_not_covered_is_an_ordinary_completion() -> None:
    body = completion(NOT, completion_id="chatcmpl-2", created=7, model=MODEL_ID)
    assert body["choices"][0]["message"]["content"] == NOT_COVERED
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["citations"] == []
    assert body["citeqa"]["covered"] is False


def test_stream_chunks_add_up_to_the_reply_and_end_with_the_citations() -> None:
    first = first_chunk(completion_id="chatcmpl-3", created=9, model=MODEL_ID)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    chunks = answer_chunks(ANSWER, completion_id="chatcmpl-3", created=9, model=MODEL_ID)
    *pieces, last = chunks
    assert len(pieces) > 3
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-3" for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in pieces) == message_text(ANSWER)
    assert all(c["choices"][0]["finish_reason"] is None for c in pieces)
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert last["citations"] == [citation_record(CITATION)]
    assert last["citeqa"]["covered"] is True


@pytest.mark.parametrize(
    "text", ["", "one", "a b  c\n\nd", "word " * 40, "x" * 200 + " tail", "  lead\ttab\n"]
)
def test_split_text_keeps_every_character(text: str) -> None:
    pieces = split_text(text, size=16)
    assert "".join(pieces) == text
    assert all(pieces)


def test_errors_have_openai_shape_and_type() -> None:
    assert error_body(404, "No such model", param="model", code="model_not_found") == {
        "error": {
            "message": "No such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert error_body(401, "Log in")["error"]["type"] == "invalid_request_error"
    assert error_body(429, "Busy")["error"]["type"] == "rate_limit_error"
    assert error_body(500, "Broken")["error"]["type"] == "server_error"
    assert error_body(503, "Down")["error"]["type"] == "server_error"
    assert model_list(5)["data"] == [
        {"id": "citeqa", "object": "model", "created": 5, "owned_by": "citeqa"}
    ]


# ---- sources as text ----


def test_article_metadata_in_the_sources_list_stays_text() -> None:
    hostile = Citation(
        marker=2,
        article_id="a",
        title="Click [here](javascript:alert(1)) <img src=x onerror=alert(2)> `code`",
        source="<b>Outlet</b>",
        url="javascript:alert(3)",
        published=None,
        passage="p",
        start=0,
        end=1,
        score=0.1,
    )
    listed = sources_list([hostile])
    assert listed == (
        "Sources:\n- [2] Click \\[here\\](javascript:alert(1)) \\<img src=x onerror=alert(2)\\> "
        "\\`code\\` (\\<b\\>Outlet\\</b\\>)"
    )
    assert sources_list([]) == ""
    assert markdown_text("a\n\nb \\ c") == "a b \\\\ c"
    assert plain_url("https://en.wikipedia.org/wiki/Amazon_(company)") is not None
    assert plain_url("https://x.org/a b") is None
    assert plain_url("https://x.org/<script>") is None

"""The Gradio app through `gradio_client`, with the real chain (SmolLM2) behind it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app import create_demo, escape, render_answer, to_history
from index.chunking import Chunk
from qa import NOT_COVERED, Answer, QAChain
from qa.citations import build_citations
from qa.types import RetrievedChunk


def launch(chain: QAChain) -> tuple[gr.Blocks, str]:
    demo = create_demo(chain)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, share=False
    )
    return demo, url


@pytest.fixture(scope="module")
def client(smol_chain: QAChain) -> Iterator[Client]:
    demo, url = launch(smol_chain)
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_question_gets_an_answer_with_sources_or_not_covered(client: Client) -> None:
    reply = client.predict("Who won Super Bowl 50?", api_name="/chat")
    assert isinstance(reply, str)
    assert reply.strip()
    if "**Sources**" in reply:  # a small model may answer without citing
        assert "Super Bowl 50" in reply.split("**Sources**")[1]


def test_unrelated_question_gets_the_not_covered_answer(client: Client) -> None:
    reply = client.predict("What is the best recipe for banana bread?", api_name="/chat")
    assert reply == NOT_COVERED


def test_empty_question_is_a_readable_error(client: Client) -> None:
    with pytest.raises(AppError, match="Please type a question about the articles"):
        client.predict("   ", api_name="/chat")


def passage(text: str, url: str | None) -> RetrievedChunk:
    chunk = Chunk("c", "a", 0, text, 0, len(text), "<b>Title</b>", "Outlet", url, "2024-03-19")
    return RetrievedChunk(chunk, 0.9, 1, 0.9)


def test_sources_show_title_outlet_date_link_and_escaped_passage() -> None:
    hit = passage(
        "Evil <script>alert(1)</script> ![x](http://evil/x.png) text.", "https://ex.org/a"
    )
    answer = Answer("q", "It happened [1].", build_citations("It happened [1].", [hit]), (hit,))
    rendered = render_answer(answer)
    assert "**[1] &lt;b&gt;Title&lt;/b&gt;** — Outlet, 2024-03-19 · [link](https://ex.org/a)" in (
        rendered
    )
    assert "<script>" not in rendered
    assert "![x](" not in rendered


def test_unsafe_links_are_not_rendered() -> None:
    hit = passage("Text.", "javascript:alert(1)")
    answer = Answer("q", "It [1].", build_citations("It [1].", [hit]), (hit,))
    assert "javascript:" not in render_answer(answer)
    assert escape("a](b") == "a]\\(b"


def test_history_pairs_drop_the_sources_section() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Who is Wang Lei?"},
        {"role": "assistant", "content": "A diplomat [1].\n\n---\n**Sources**\n\n**[1] X**"},
        {"role": "user", "content": [{"type": "text", "text": "Where?"}]},
        {"role": "assistant", "content": "Brussels [2]."},
    ]
    assert to_history(messages) == [
        ("Who is Wang Lei?", "A diplomat [1]."),
        ("Where?", "Brussels [2]."),
    ]

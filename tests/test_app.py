"""The web UI: every event handler through `gradio_client` against the real chain (SmolLM2 and
the extractive fast mode), the file routes and login probed over real HTTP, and the rendering
functions that keep article and model text inert."""

from __future__ import annotations

import gc
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from pydantic import SecretStr

import app
from index.embeddings import Embedder
from index.types import Chunk
from qa import NOT_COVERED, Answer, QAChain, Settings
from qa.conversations import ConversationStore
from qa.grounding import make_citation
from qa.retrieval import PassageFilter
from qa.types import REFUSALS, CheckedSentence, RetrievedChunk
from tests.conftest import ROOT, SAMPLE_ARTICLES, XINHUA_TITLE
from tests.support.factories import build_library, launch, open_chain
from ui import forms, render, serving
from ui.saved import SavedConversations

WIKIPEDIA = "Wikipedia (SQuAD v1.1 dev)"


def with_settings(chain: QAChain, **overrides: Any) -> QAChain:
    """`chain` with other settings, sharing its loaded retriever and model."""
    return QAChain(chain.retriever, chain.llm, chain.settings.model_copy(update=overrides))


def ask(client: Client, question: str, *, fast: bool = True, **filters: Any) -> tuple[Any, ...]:
    result = client.predict(
        question,
        fast,
        filters.get("outlets", []),
        filters.get("date_from"),
        filters.get("date_to"),
        api_name="/ask",
    )
    assert isinstance(result, tuple | list)
    return tuple(result)


def last_answer(chat: list[dict[str, Any]]) -> str:
    assert chat[-1]["role"] == "assistant"
    return str(chat[-1]["content"])


@pytest.fixture(scope="module")
def smol_app(smol_chain: QAChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Uploads would go to a folder the index was not built from: refused, nothing written.
    chain = with_settings(smol_chain, articles_dir=tmp_path_factory.mktemp("elsewhere"))
    demo, url = launch(chain)
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture
def client(smol_app: str) -> Client:
    """A new browser session (its own conversation) on the shared page."""
    return Client(smol_app, verbose=False)


# ---- asking ----


def test_fast_mode_answer_cites_the_xinhua_passage_with_its_evidence(client: Client) -> None:
    chat, sources, copied, box = ask(client, "Who is Wang Lei?")
    message = last_answer(chat)
    assert 'class="cq-cite" href="#cite-1-1"' in message
    assert "Wang Lei, coordinator for cyber and digital affairs" in message
    assert "extractive" in message
    assert 'id="cite-1-1"' in sources
    assert XINHUA_TITLE.replace("'", "&#x27;") in sources
    assert "Xinhua, 2024-03-19" in sources
    assert "<mark>Wang Lei, coordinator for cyber and digital affairs" in sources
    assert "rank 1" in sources
    assert "retrieval score" in sources
    assert copied.startswith('"Wang Lei, coordinator')
    assert f"Sources:\n[1] {XINHUA_TITLE} (Xinhua, 2024-03-19)" in copied
    assert box == ""


def test_model_answer_streams_and_ends_checked(client: Client) -> None:
    job = client.submit("Who won Super Bowl 50?", False, [], None, None, api_name="/ask")
    job.result(timeout=300)
    outputs = job.outputs()  # every streamed update, then the final one
    assert len(outputs) >= 2
    assert "cq-draft" in last_answer(outputs[0][0])
    final = last_answer(outputs[-1][0])
    assert "cq-draft" not in final
    assert "the local language model" in final or "extractive" in final
    if 'class="cq-cite"' in final:  # a small model may answer without a checked citation
        assert "Super Bowl 50" in outputs[-1][1]


def gradio_components() -> int:
    gc.collect()
    return sum(issubclass(type(o), gr.blocks.Block) for o in gc.get_objects())


def test_answers_leave_no_gradio_components_behind(client: Client) -> None:
    # Gradio builds a new component for every `gr.skip()` a streaming handler yields and keeps
    # it for good: the page used to hold on to two per streamed piece of every answer.
    ask(client, "Who is Wang Lei?")  # the session's own copies of the page exist from here
    before = gradio_components()
    for question in ["Who won Super Bowl 50?", "Who is Wang Lei?"] * 5:
        chat, *_ = ask(client, question)
        assert "cq-draft" not in last_answer(chat)
    assert gradio_components() == before


def test_follow_up_keeps_the_conversation_and_numbers_its_sources(client: Client) -> None:
    ask(client, "Who is Wang Lei?")
    chat, sources, _, _ = ask(client, "Who won Super Bowl 50?")
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]
    assert 'href="#cite-2-' in last_answer(chat)
    assert sources.index("Answer 2: Who won Super Bowl 50?") < sources.index(
        "Answer 1: Who is Wang Lei?"
    )
    assert "<strong>Super Bowl 50</strong>" in sources


def test_new_conversation_clears_the_page(client: Client) -> None:
    ask(client, "Who is Wang Lei?")
    chat, sources, copied, box = client.predict(api_name="/new_conversation")
    assert chat == []
    assert "Sources appear here" in sources
    assert copied == box == ""
    chat, sources, _, _ = ask(client, "Who won Super Bowl 50?")
    assert len(chat) == 2
    assert "Answer 1: Who won Super Bowl 50?" in sources


def test_unrelated_question_gets_the_marked_not_covered_answer(client: Client) -> None:
    chat, sources, copied, _ = ask(client, "What is the best recipe for banana bread?", fast=False)
    message = last_answer(chat)
    assert 'class="cq-answer cq-not-covered"' in message
    assert "Not covered by the articles" in message
    assert html_text(NOT_COVERED) in message
    assert html_text(REFUSALS["gate"]) in message  # why: the gate, before any model ran
    assert "Closest passages, not close enough" in sources
    assert copied == NOT_COVERED


def test_date_filter_applies_to_retrieval(client: Client) -> None:
    chat, *_ = ask(client, "Who is Wang Lei?", date_from="2020-01-01", date_to="2023-12-31")
    assert "cq-not-covered" in last_answer(chat)
    chat, sources, *_ = ask(
        client, "Who is Wang Lei?", date_from="2024-03-01", date_to="2024-03-31 00:00:00"
    )
    assert 'class="cq-cite"' in last_answer(chat)
    assert "Xinhua, 2024-03-19" in sources


def test_outlet_filter_applies_to_retrieval(client: Client) -> None:
    _, sources, *_ = ask(client, "Who won Super Bowl 50?", outlets=["Xinhua"])
    assert "<strong>Super Bowl 50</strong>" not in sources
    _, sources, *_ = ask(client, "Who won Super Bowl 50?", outlets=[WIKIPEDIA])
    assert "<strong>Super Bowl 50</strong>" in sources


def test_bad_dates_are_readable_errors(client: Client) -> None:
    with pytest.raises(AppError, match="must look like 2024-03-19"):
        ask(client, "Who is Wang Lei?", date_from="March 2024")
    with pytest.raises(AppError, match="is after the end date"):
        ask(client, "Who is Wang Lei?", date_from="2024-05-01", date_to="2024-01-01")


def test_empty_and_overlong_questions_are_readable_errors(client: Client) -> None:
    with pytest.raises(AppError, match="Please type a question about the articles"):
        ask(client, "   ")
    with pytest.raises(AppError, match="the limit is 2000"):
        ask(client, "Who is Wang Lei? " * 200)


def test_index_status_lists_the_index_and_its_outlets(client: Client) -> None:
    status, outlets = client.predict(api_name="/index_status")
    assert "<th>Articles</th><td>11</td>" in status
    assert "all-MiniLM-L6-v2" in status
    assert "local: " in status
    assert "Last sync" in status
    assert "Xinhua (1)" in status
    assert outlets["choices"] == [[WIKIPEDIA, WIKIPEDIA], ["Xinhua", "Xinhua"]]


def test_upload_from_a_page_whose_index_came_from_elsewhere_is_refused(client: Client) -> None:
    path = SAMPLE_ARTICLES / "xinhua-china-eu-digital-2024-03-19.txt"
    with pytest.raises(AppError, match="read from outside the articles folder"):
        client.predict([handle_file(path)], "", api_name="/add_articles")


# ---- uploads ----


@pytest.fixture(scope="module")
def upload_app(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[str, Settings]]:
    settings = build_library(tmp_path_factory.mktemp("library"), embedder, max_upload_mb=1)
    demo, url = launch(open_chain(settings, embedder))
    try:
        yield url, settings
    finally:
        demo.close()


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


PAGE = """<html><head><title>Lighthouse keepers vote to strike</title>
<meta property="og:site_name" content="Harbour Gazette">
<meta property="article:published_time" content="2024-05-02"></head><body><article>
<h1>Lighthouse keepers vote to strike</h1>
<p>The lighthouse keepers of Port Ellery voted on Monday to strike for two weeks, the union
secretary Maren Holt said. The keepers want the night allowance restored to its 2019 level.</p>
<p>The harbour authority said ships would be guided by temporary buoys during the strike, and that
talks with the union would resume on Friday in the old customs house.</p></article></body></html>"""


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/strike.html"
    finally:
        server.shutdown()


def test_uploaded_file_is_indexed_and_answers(
    upload_app: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = upload_app
    article = tmp_path / "quarry-2024-06-01.md"
    article.write_text(
        "---\nsource: Valley Courier\n---\n# Quarry reopens after flood\n\nThe Breckon quarry "
        "reopened on Saturday after the spring flood, the operator Tamsin Fell said. Forty "
        "workers returned to the pits, and the access road was rebuilt with a higher bridge.\n",
        encoding="utf-8",
    )
    junk = tmp_path / "notes.exe"
    junk.write_bytes(b"MZ not an article")
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match=r"Invalid file type"):
        client.predict([handle_file(article), handle_file(junk)], "", api_name="/add_articles")
    assert not (settings.articles_dir / "uploads").exists()
    report, files, urls = client.predict([handle_file(article)], "", api_name="/add_articles")
    assert "added 1, updated 0, unchanged 11" in report
    assert files is None
    assert urls == ""
    saved = list((settings.articles_dir / "uploads").iterdir())
    assert [p.name for p in saved] == [report.split("Saved: ")[1].split("<")[0]]
    assert saved[0].name.startswith("quarry-2024-06-01-")
    chat, sources, *_ = ask(client, "Who is the operator of the Breckon quarry?")
    assert 'class="cq-cite"' in last_answer(chat)
    assert "Quarry reopens after flood" in sources
    assert "Valley Courier, 2024-06-01" in sources
    status, outlets = client.predict(api_name="/index_status")
    assert "<th>Articles</th><td>12</td>" in status
    assert ["Valley Courier", "Valley Courier"] in outlets["choices"]


def test_uploaded_url_is_fetched_saved_and_indexed(
    upload_app: tuple[str, Settings], page_url: str
) -> None:
    url, settings = upload_app
    client = Client(url, verbose=False)
    report, *_ = client.predict([], f"{page_url}\nftp://example.org/x", api_name="/add_articles")
    assert "added 1," in report
    assert "ftp://example.org/x: not an http(s) URL" in report
    saved = sorted(p.name for p in (settings.articles_dir / "uploads").glob("*.json"))
    assert any(name.startswith("Lighthouse-keepers-vote-to-strike-") for name in saved)
    chat, sources, *_ = ask(client, "Why do the lighthouse keepers of Port Ellery strike?")
    assert 'class="cq-cite"' in last_answer(chat)
    assert "Harbour Gazette" in sources


def test_upload_over_the_size_limit_is_refused(
    upload_app: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = upload_app
    big = tmp_path / "big.txt"
    big.write_text("Title\n\n" + "word " * 300_000, encoding="utf-8")  # 1.5 MB, limit 1 MB
    before = (
        sorted((settings.articles_dir / "uploads").glob("*"))
        if (settings.articles_dir / "uploads").exists()
        else []
    )
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=r"(?i)too large|maximum|exceeds|413"):
        client.predict([handle_file(big)], "", api_name="/add_articles")
    after = (
        sorted((settings.articles_dir / "uploads").glob("*"))
        if (settings.articles_dir / "uploads").exists()
        else []
    )
    assert after == before


def test_upload_with_nothing_chosen_is_a_readable_error(upload_app: tuple[str, Settings]) -> None:
    client = Client(upload_app[0], verbose=False)
    with pytest.raises(AppError, match="Choose files or type URLs"):
        client.predict([], "  ", api_name="/add_articles")


# ---- queue, login, file routes ----


class GatedChain(QAChain):
    """The real chain, held before answering until the test opens the gate."""

    gate: threading.Event

    def events(self, *args: Any, **kwargs: Any) -> Iterator[str | Answer]:
        self.gate.wait(timeout=60)
        yield from super().events(*args, **kwargs)


@pytest.mark.server
def test_full_queue_is_refused_at_once(smol_chain: QAChain) -> None:
    settings = smol_chain.settings.model_copy(update={"queue_size": 1})
    chain = GatedChain(smol_chain.retriever, None, settings)
    chain.gate = threading.Event()
    demo, url = launch(chain)
    try:
        client = Client(url, verbose=False)
        running = client.submit("Who is Wang Lei?", True, [], None, None, api_name="/ask")
        wait_until(lambda: running.status().code.name == "PROCESSING")
        waiting = client.submit("Who is Wang Lei?", True, [], None, None, api_name="/ask")
        wait_until(lambda: waiting.status().code.name in ("IN_QUEUE", "QUEUE_FULL"))
        refused = client.submit("Who is Wang Lei?", True, [], None, None, api_name="/ask")
        with pytest.raises(Exception, match="Queue is full"):
            refused.result(timeout=30)
        chain.gate.set()
        assert "cq-cite" in last_answer(running.result(timeout=120)[0])
    finally:
        chain.gate.set()
        demo.close()


def wait_until(condition: Any, attempts: int = 600) -> None:
    event = threading.Event()
    for _ in range(attempts):
        if condition():
            return
        event.wait(0.1)
    raise AssertionError("condition never became true")


@pytest.mark.server
def test_login_is_required_when_a_password_is_set(smol_chain: QAChain) -> None:
    chain = with_settings(
        smol_chain, auth_username="reader", auth_password=SecretStr("s3cret-pass")
    )
    demo, url = launch(chain)
    try:
        assert get(url, "/gradio_api/info")[0] == 401
        with pytest.raises(Exception, match=r"(?i)login|credentials|401|auth"):
            Client(url, verbose=False)
        with pytest.raises(Exception, match=r"(?i)login|credentials|401|auth|incorrect"):
            Client(url, auth=("reader", "wrong"), verbose=False)
        chat, *_ = ask(
            Client(url, auth=("reader", "s3cret-pass"), verbose=False), "Who is Wang Lei?"
        )
        assert "cq-cite" in last_answer(chat)
    finally:
        demo.close()


def test_exposing_the_page_needs_a_login(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--host", "0.0.0.0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: CITEQA_HOST=0.0.0.0 opens the page to the network")
    assert "CITEQA_AUTH_USERNAME and CITEQA_AUTH_PASSWORD" in error
    settings = Settings(host="0.0.0.0", auth_username="a", auth_password="b")
    assert serving.exposure_problem(settings) is None
    assert "both" in str(serving.exposure_problem(Settings(auth_username="a")))


def get(base: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (no normalisation of `..` or escapes)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def upload_raw(base: str, name: str, data: bytes) -> str:
    """Upload a file as the page does; the path Gradio stored it under."""
    boundary = "citeqa-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/gradio_api/upload",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        response = connection.getresponse()
        assert response.status == 200
        stored = json.loads(response.read())
    finally:
        connection.close()
    assert isinstance(stored, list)
    return str(stored[0])


def file_probes(settings: Settings) -> list[str]:
    index = settings.index_dir.resolve()
    chroma = next(index.rglob("chroma.sqlite3"))
    current = next(index.rglob("CURRENT"))
    article = SAMPLE_ARTICLES / "xinhua-china-eu-digital-2024-03-19.txt"
    targets = [
        "/etc/passwd",
        "//etc/passwd",
        "%2Fetc%2Fpasswd",
        "../../pyproject.toml",
        "..%2F..%2Fpyproject.toml",
        "%2e%2e%2f%2e%2e%2fpyproject.toml",
        "%252e%252e%252fpyproject.toml",
        "....//....//pyproject.toml",
        "pyproject.toml",
        "app.py",
        str(chroma),
        str(current),
        str(article),
        str(index),
        "file:///etc/passwd",
        "https://example.org/x.png",
        "http:%2F%2Fexample.org%2Fx.png",
    ]
    probes = []
    for target in targets:
        probes += [f"/gradio_api/file={target}", f"/file={target}"]
    probes += [
        "/gradio_api/file/etc/passwd",
        "/gradio_api/file/" + str(chroma).lstrip("/"),
        "/gradio_api/proxy=http://127.0.0.1:9/x",
        "/static/../../pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/assets/..%2f..%2f..%2fpyproject.toml",
        "/gradio_api/custom_component/x/client/..%2f..%2f/pyproject.toml",
    ]
    return probes


def test_file_routes_serve_nothing_outside_the_upload_area(
    upload_app: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = upload_app
    served = []
    for path in file_probes(settings):
        status, body = get(url, path)
        if status not in (403, 404) or b"root:" in body or b"[project]" in body:
            served.append((path, status))
    assert served == []
    # The same route does serve what was uploaded to the page (so the probes can fail).
    stored = upload_raw(url, "mine.txt", b"Mine\n\nuploaded text")
    assert get(url, f"/gradio_api/file={stored}") == (200, b"Mine\n\nuploaded text")


def test_oversized_requests_are_refused(upload_app: tuple[str, Settings]) -> None:
    url = upload_app[0]  # uploads of at most 1 MB: request bodies of at most 11 MB
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        body = b'{"data": ["' + b"a" * 12_000_000 + b'"]}'
        connection.request(
            "POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"}
        )
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_remote_file_paths_are_recognised() -> None:
    assert serving.is_remote_file_path("/gradio_api/file=https://example.org/x.png")
    assert serving.is_remote_file_path("/gradio_api/file=HTTP://example.org")
    assert serving.is_remote_file_path("/file/http://x")
    assert serving.is_remote_file_path("/gradio_api/proxy=http://127.0.0.1:9/x")
    assert not serving.is_remote_file_path("/gradio_api/file=/srv/gradio-cache/abc/x.txt")
    assert not serving.is_remote_file_path("/gradio_api/queue/join")


def test_launch_options_are_safe_by_default(tmp_path: Path) -> None:
    options = serving.launch_options(Settings(index_dir=tmp_path / "index"))
    assert options["server_name"] == "127.0.0.1"
    assert options["share"] is False
    assert options["auth"] is None
    assert options["allowed_paths"] == []
    assert str((tmp_path / "index").resolve()) in options["blocked_paths"]
    assert options["max_file_size"] == "20mb"
    assert options["mcp_server"] is False
    assert options["run_history"] is False
    assert options["enable_monitoring"] is False
    assert options["pwa"] is False
    options = serving.launch_options(Settings(auth_username="u", auth_password="p"))
    assert options["auth"] == ("u", "p")


# ---- rendering: article, model and user text stays text ----

EVIL = (
    '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
    "[x](javascript:window.__pwned=3) ![i](http://outside.example/x.png)"
)


def html_text(text: str) -> str:
    return render.text_html(text)


def hit(text: str, url: str | None, title: str = "<b>Title</b>", rank: int = 1) -> RetrievedChunk:
    chunk = Chunk("c", "a", 0, text, 0, len(text), title, "Outlet", url, "2024-03-19")
    return RetrievedChunk(chunk, 0.9, rank, 0.9)


def test_sources_escape_everything_and_mark_the_supporting_spans() -> None:
    passage = f"Harmless start. {EVIL} The supporting words."
    found = hit(passage, "https://ex.org/a?b=1&c=2")
    start = passage.index("The supporting words.")
    citation = make_citation(1, found, ((start, len(passage)),), 0.8)
    answer = Answer("q", "It happened [1].", (citation,), (found,))
    rendered = render.sources_html(answer, 3)
    assert 'id="cite-3-1"' in rendered
    assert "<strong>&lt;b&gt;Title&lt;/b&gt;</strong>" in rendered
    assert "<mark>The supporting words.</mark>" in rendered
    assert 'href="https://ex.org/a?b=1&amp;c=2"' in rendered
    assert 'rel="noopener noreferrer nofollow"' in rendered
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert "&lt;script&gt;" in rendered
    assert "rank 1 · similarity 0.90 · retrieval score 0.900 · support 0.80" in rendered


def test_unsafe_links_are_never_rendered() -> None:
    for url in ["javascript:alert(1)", "data:text/html,x", 'https://x.org/"onmouseover=', None]:
        found = hit("Text.", url)
        answer = Answer("q", "It [1].", (make_citation(1, found, (), 0.0),), (found,))
        rendered = render.sources_html(answer, 1)
        assert "javascript:" not in rendered
        assert "data:" not in rendered
        assert ">link</a>" not in rendered


def test_answer_marks_unsupported_sentences_and_links_markers() -> None:
    sentences = (
        CheckedSentence("Wang Lei is a diplomat.", (1,), True, 0.9),
        CheckedSentence(f"He said {EVIL}.", (), False, 0.1),
    )
    answer = Answer("q", "x", (), (), sentences=sentences, notice="The model <b>failed</b>.")
    rendered = render.answer_html(answer, 2)
    assert 'Wang Lei is a diplomat <a class="cq-cite" href="#cite-2-1"' in rendered
    assert '<span class="cq-unsupported"' in rendered
    assert "⚠ unsupported" in rendered
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert '<div class="cq-notice">The model &lt;b&gt;failed&lt;/b&gt;.</div>' in rendered
    assert "\n\n" not in rendered


def test_not_covered_answer_looks_different() -> None:
    answer = Answer("q", NOT_COVERED, (), (), covered=False, standalone_question="Who <is> he?")
    rendered = render.answer_html(answer, 1)
    assert rendered.startswith('<div class="cq-answer cq-not-covered">')
    assert "Searched for: “Who &lt;is&gt; he?”" in rendered


def test_questions_and_drafts_are_text_without_blank_lines() -> None:
    assert render.question_html(EVIL).count("<") == 1 + render.question_html(EVIL).count("</div>")
    assert render.draft_html("a\n\n<b>b</b>") == (
        '<div class="cq-answer cq-draft">a<br>&lt;b&gt;b&lt;/b&gt;</div>'
    )


def test_spans_are_clipped_sorted_and_merged() -> None:
    assert render.merge_spans([(5, 9), (0, 3), (2, 4), (8, 50), (7, 7)], 20) == [(0, 4), (5, 20)]
    assert render.passage_html("a<b>c", [(1, 4)]) == "a<mark>&lt;b&gt;</mark>c"


def test_filters_from_the_page_fields() -> None:
    assert forms.build_filter([], None, "") is None
    assert forms.build_filter(["Xinhua"], "2024-01-01 00:00:00", None) == PassageFilter(
        frozenset({"Xinhua"}), "2024-01-01", None
    )
    with pytest.raises(ValueError, match="must look like"):
        forms.build_filter(None, "yesterday", None)


def test_app_module_does_no_work_at_import() -> None:
    assert not hasattr(app, "demo")


ARENA_PROBE = """
import ctypes, sys, threading
limited = None
if sys.argv[1] == "limit":  # (the default needs no app: importing it takes seconds)
    import app
    limited = app.limit_malloc_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def allocate():
    blocks = [libc.malloc(4096) for _ in range(1000)]
    for block in blocks:
        libc.free(block)
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(limited, flush=True)
libc.malloc_stats()  # one "Arena n:" section per malloc arena, on stderr
"""


@pytest.mark.parametrize(
    ("mode", "environment", "limited", "one_arena"),
    [
        ("limit", {}, "True", True),
        ("limit", {"MALLOC_ARENA_MAX": "4"}, "False", False),  # the user's own setting wins
        ("default", {}, "None", False),
    ],
)
def test_the_app_keeps_one_malloc_arena_unless_told_otherwise(
    mode: str, environment: dict[str, str], limited: str, one_arena: bool
) -> None:
    # Threads that allocate each get an arena of their own by default (glibc); the app's
    # worker threads must share one, or freed memory piles up in arenas no thread reuses.
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    result = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == limited
    arenas = len(re.findall(r"^Arena \d+:", result.stderr, re.MULTILINE))
    assert (arenas == 1) == one_arena, result.stderr[-1000:]


def test_exports_leave_no_folder_until_one_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page killed before it exported anything (every test server, most users) used to leave
    # an empty export folder behind in the temporary folder at each start.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    conversation = store.create("", "Who is Wang Lei?")
    panel = SavedConversations(store, max_turns=10)
    assert not list(tmp_path.glob("citeqa-exports-*"))
    written = Path(panel.export(conversation, "md", ""))
    assert written.read_text(encoding="utf-8").startswith("#")
    assert written.parents[1].parent == tmp_path
    assert written.parents[1].name.startswith("citeqa-exports-")

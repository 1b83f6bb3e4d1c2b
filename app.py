"""The Gradio web UI: `create_demo(chain)` builds the page, `launch_demo` serves it safely, and
`main()` does both from `CITEQA_*` settings, on 127.0.0.1 unless told otherwise.

The page: streamed answers whose `[n]` markers open their passage in the sources panel, with the
supporting text highlighted; unsupported sentences and "not covered" answers marked; filters by
outlet and publication date; a fast (extractive) mode; uploads of files and URLs into the index,
with progress; the index's status; example questions drawn from the index.

Everything from articles, models and users is HTML-escaped here and nowhere else; links are only
ever `http(s)` URLs from index metadata. This is the only module that imports gradio.
"""

from __future__ import annotations

import argparse
import ctypes
import html
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from qa import NOT_COVERED, Answer, Citation, QAChain, Settings, build_chain, enforce_offline
from qa.catalog import (
    SUPPORTED_SUFFIXES,
    IndexStats,
    UploadResult,
    add_articles,
    example_questions,
    index_status,
    is_loopback_host,
    upload_folder,
)
from qa.citations import format_byline, format_sources
from qa.errors import USER_ERRORS
from qa.retrieval import PassageFilter

log = logging.getLogger(__name__)

MAX_TURNS = 20  # questions a conversation keeps on the page (older ones scroll away)
MAX_HISTORY_CHARS = 2000  # of each earlier answer sent back with a follow-up
MAX_URLS = 20  # URLs one upload may name
EXAMPLE_COUNT = 3
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMPTY_SOURCES = (
    '<div class="cq-empty">Sources appear here: click a <b>[n]</b> in an answer to open the '
    "passage it cites, with the supporting text highlighted.</div>"
)
# Every request body, uploads included, is refused past this many upload-size units (413).
BODY_LIMIT_UPLOADS = 10

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSS = """
#chat .cq-answer { line-height: 1.55; }
#chat .cq-cite { font-weight: 600; text-decoration: none; padding: 0 1px; cursor: pointer; }
#chat .cq-unsupported { background: rgba(220, 38, 38, 0.10); border-bottom: 2px dashed #dc2626; }
#chat .cq-flag { font-size: 0.75em; color: #b91c1c; font-weight: 600; margin-left: 4px;
  white-space: nowrap; }
#chat .cq-not-covered { border-left: 4px solid #9ca3af; padding: 6px 10px; color: #4b5563;
  background: rgba(156, 163, 175, 0.12); }
#chat .cq-not-covered .cq-label { font-weight: 700; display: block; }
#chat .cq-notice { border-left: 4px solid #d97706; padding: 4px 8px; margin-top: 8px;
  background: rgba(217, 119, 6, 0.10); font-size: 0.9em; }
.cq-banner { border-left: 4px solid #d97706; padding: 6px 10px;
  background: rgba(217, 119, 6, 0.12); }
#chat .cq-meta, #sources .cq-meta { font-size: 0.8em; opacity: 0.7; margin-top: 6px; }
#chat .cq-draft { opacity: 0.85; }
#sources .cq-source { border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 8px;
  padding: 8px 10px; margin: 8px 0; scroll-margin: 40px; transition: box-shadow 0.3s; }
#sources .cq-source.cq-active { box-shadow: 0 0 0 3px #f59e0b; }
#sources .cq-num { font-weight: 700; margin-right: 4px; }
#sources .cq-passage { margin: 6px 0; padding-left: 8px; border-left: 3px solid #d1d5db;
  white-space: pre-wrap; }
#sources mark { background: #fde68a; color: inherit; padding: 0 1px; }
#sources .cq-byline { font-size: 0.85em; opacity: 0.85; }
#sources summary { cursor: pointer; font-weight: 600; }
#status table { font-size: 0.9em; }
"""

# Markers open their passage: the sources panel scrolls to it and highlights it (a delegated
# listener, so it works for every answer the chat renders later).
HEAD = """<script>
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a.cq-cite") : null;
  if (!link) { return; }
  event.preventDefault();
  event.stopPropagation();
  var target = document.getElementById((link.getAttribute("href") || "").slice(1));
  if (!target) { return; }
  var group = target.closest("details");
  if (group) { group.open = true; }
  document.querySelectorAll("#sources .cq-active").forEach(function (el) {
    el.classList.remove("cq-active");
  });
  target.classList.add("cq-active");
  target.scrollIntoView({ behavior: "smooth", block: "center" });
}, true);
</script>"""

COPY_JS = """(text) => {
  if (!text) { return []; }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text);
  } else {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  return [];
}"""


@dataclass(frozen=True, slots=True)
class Turn:
    """One question and its answer as the page keeps them."""

    number: int
    question: str
    answer: str  # the answer's text with its [n] markers (sent back as history)
    message: str  # the answer as the chat shows it (HTML)
    sources: str  # its section of the sources panel (HTML)
    copy: str  # what "Copy answer" copies: the text and its sources, plain


# ---- rendering (pure functions: text in, escaped HTML out) ----


def text_html(text: str) -> str:
    """`text` as HTML text: escaped, line breaks kept, no blank line (which would end the chat's
    HTML block and let Markdown in)."""
    escaped = html.escape(text, quote=True)
    return "<br>".join(line for line in escaped.splitlines() if line.strip())


def safe_url(url: str | None) -> str | None:
    """`url` if it is a plain http(s) URL, else None (no `javascript:`, no data, no quotes)."""
    if url and _SAFE_URL.match(url.strip()):
        return url.strip()
    return None


def cite_id(turn: int, marker: int) -> str:
    return f"cite-{turn}-{marker}"


def cite_link(turn: int, marker: int) -> str:
    return f'<a class="cq-cite" href="#{cite_id(turn, marker)}" title="Show source">[{marker}]</a>'


def sentence_html(text: str, markers: Sequence[int], turn: int) -> str:
    """A checked sentence with its markers as links, placed before its closing punctuation."""
    links = "".join(cite_link(turn, n) for n in markers)
    match = re.search(r"[.!?;:]+$", text)
    if links and match:
        body, end = text[: match.start()].rstrip(), match.group(0)
        return f"{text_html(body)} {links}{text_html(end)}"
    return f"{text_html(text)} {links}" if links else text_html(text)


def answer_html(answer: Answer, turn: int) -> str:
    """The chat message of a finished answer: its sentences (unsupported ones flagged) with
    clickable markers, any notice, and what was searched for."""
    meta: list[str] = []
    if answer.standalone_question:
        meta.append(f"Searched for: “{text_html(answer.standalone_question)}”")
    meta.append(f"Answered by: {BACKEND_NAMES.get(answer.backend, answer.backend)}")
    meta_html = f'<div class="cq-meta">{" · ".join(meta)}</div>'
    if not answer.covered:
        return (
            '<div class="cq-answer cq-not-covered">'
            '<span class="cq-label">Not covered by the articles</span>'
            f"{text_html(NOT_COVERED)} No indexed passage is close enough to this question; "
            "try other words, widen the filters, or add articles about it."
            f"{meta_html}</div>"
        )
    if answer.sentences:
        parts = []
        for s in answer.sentences:
            body = sentence_html(s.text, s.markers, turn)
            if not s.supported:
                body = (
                    '<span class="cq-unsupported" title="No retrieved passage supports this '
                    f'sentence">{body}<span class="cq-flag">⚠ unsupported</span></span>'
                )
            parts.append(body)
        body_html = " ".join(parts)
    else:
        body_html = text_html(answer.text)
    notice = f'<div class="cq-notice">{text_html(answer.notice)}</div>' if answer.notice else ""
    return f'<div class="cq-answer">{body_html}{notice}{meta_html}</div>'


def draft_html(text: str) -> str:
    """The answer while it is being written (its markers are checked when it is done)."""
    return f'<div class="cq-answer cq-draft">{text_html(text) or "…"}</div>'


def question_html(question: str) -> str:
    return f'<div class="cq-question">{text_html(question)}</div>'


def passage_html(passage: str, spans: Sequence[tuple[int, int]]) -> str:
    """The passage with its supporting spans in `<mark>`, everything escaped."""
    pieces: list[str] = []
    position = 0
    for start, end in merge_spans(spans, len(passage)):
        pieces.append(html.escape(passage[position:start]))
        pieces.append(f"<mark>{html.escape(passage[start:end])}</mark>")
        position = end
    pieces.append(html.escape(passage[position:]))
    return "".join(pieces)


def merge_spans(spans: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """Spans clipped to `[0, length]`, sorted, overlapping ones merged, empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(length, e)) for s, e in spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def citation_html(citation: Citation, answer: Answer, turn: int) -> str:
    """One source card: number, title, outlet, date, link, passage with highlights, scores."""
    byline = [html.escape(format_byline(citation.source, citation.published))]
    url = safe_url(citation.url)
    if url:
        byline.append(
            f'<a href="{html.escape(url, quote=True)}" target="_blank" '
            'rel="noopener noreferrer nofollow">link</a>'
        )
    scores = [f"retrieval score {citation.score:.3f}"]
    also = ""
    if 1 <= citation.marker <= len(answer.retrieved):
        hit = answer.retrieved[citation.marker - 1]
        scores = [f"rank {hit.rank}", f"similarity {hit.similarity:.2f}", *scores]
        if hit.chunk.other_sources:
            also = (
                '<div class="cq-meta">Also reported by: '
                f"{html.escape('; '.join(hit.chunk.other_sources))}</div>"
            )
    if citation.spans:
        scores.append(f"support {citation.support:.2f}")
    return (
        f'<div class="cq-source" id="{cite_id(turn, citation.marker)}">'
        f'<div><span class="cq-num">[{citation.marker}]</span>'
        f"<strong>{html.escape(citation.title)}</strong></div>"
        f'<div class="cq-byline">{" · ".join(byline)}</div>'
        f'<div class="cq-passage">{passage_html(citation.passage, citation.spans)}</div>'
        f'<div class="cq-meta">{" · ".join(scores)}</div>{also}</div>'
    )


def sources_html(answer: Answer, turn: int) -> str:
    """The sources panel's section for one answer."""
    if answer.citations:
        cards = "".join(citation_html(c, answer, turn) for c in answer.citations)
    elif not answer.covered and answer.retrieved:
        closest = "".join(
            f"<li>{html.escape(h.chunk.title)} "
            f"({html.escape(format_byline(h.chunk.source, h.chunk.published))}), "
            f"similarity {h.similarity:.2f}</li>"
            for h in answer.retrieved
        )
        cards = f'<div class="cq-meta">Closest passages, not close enough:</div><ul>{closest}</ul>'
    else:
        cards = '<div class="cq-meta">No sources.</div>'
    return cards


def panel_html(turns: Sequence[Turn]) -> str:
    """The sources panel: the newest answer's sources open, earlier ones folded."""
    if not turns:
        return _EMPTY_SOURCES
    sections = []
    for index, turn in enumerate(reversed(turns)):
        state = " open" if index == 0 else ""
        sections.append(
            f'<details class="cq-turn" id="turn-{turn.number}"{state}>'
            f"<summary>Answer {turn.number}: {text_html(turn.question)}</summary>"
            f"{turn.sources}</details>"
        )
    return "".join(sections)


def copy_text(answer: Answer) -> str:
    """The answer and its sources as plain text, for the clipboard."""
    if not answer.citations:
        return answer.text
    return f"{answer.text}\n\nSources:\n{format_sources(answer.citations)}"


def chat_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": question_html(turn.question)})
        messages.append({"role": "assistant", "content": turn.message})
    return messages


def make_turn(number: int, question: str, answer: Answer) -> Turn:
    return Turn(
        number=number,
        question=question,
        answer=answer.text,
        message=answer_html(answer, number),
        sources=sources_html(answer, number),
        copy=copy_text(answer),
    )


def history_of(turns: Sequence[Turn], keep: int) -> list[tuple[str, str]]:
    """The last `keep` (question, answer) pairs, each answer cut to `MAX_HISTORY_CHARS`."""
    recent = turns[-keep:] if keep else []
    return [(t.question, t.answer[:MAX_HISTORY_CHARS]) for t in recent]


BACKEND_NAMES = {
    "local": "the local language model",
    "openai": "the language model server",
    "extractive": "extractive (the best supporting sentences, no language model)",
}


# ---- filters, status and uploads ----


def parse_date(value: str | None, name: str) -> str | None:
    """An ISO date from a date field (which may carry a time), or None when empty."""
    text = (value or "").strip()
    if not text:
        return None
    day = text[:10]
    if not _DATE.match(day):
        raise ValueError(f"The {name} date must look like 2024-03-19, not {text[:40]!r}.")
    return day


def build_filter(
    outlets: Sequence[str] | None, date_from: str | None, date_to: str | None
) -> PassageFilter | None:
    """The retrieval filter the page's fields describe, or None when they allow everything."""
    start = parse_date(date_from, "start")
    end = parse_date(date_to, "end")
    if start and end and start > end:
        raise ValueError(f"The start date {start} is after the end date {end}.")
    chosen = PassageFilter(frozenset(outlets or ()), start, end)
    return chosen if chosen.active else None


def model_name(settings: Settings, has_model: bool) -> str:
    if not has_model or settings.llm_backend == "extractive":
        return "extractive (no language model)"
    if settings.llm_backend == "openai":
        return f"openai: {settings.openai_model} at {settings.openai_base_url}"
    return f"local: {Path(settings.llm_model).name} (llama.cpp)"


def status_html(stats: IndexStats, settings: Settings, has_model: bool) -> str:
    fp = stats.fingerprint
    outlets = ", ".join(f"{name} ({count})" for name, count in stats.sources[:8])
    if len(stats.sources) > 8:
        outlets += f", and {len(stats.sources) - 8} more"
    rows = [
        ("Articles", str(stats.articles)),
        ("Chunks", str(stats.chunks)),
        ("Last sync", stats.built_at or "unknown"),
        ("Embedding model", f"{fp.embedding_model} ({fp.dimension} dimensions)"),
        ("LLM backend", model_name(settings, has_model)),
        ("Outlets", outlets or "none"),
        ("Build", stats.build_id),
    ]
    body = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in rows
    )
    return f'<table class="cq-status">{body}</table>'


def upload_html(result: UploadResult) -> str:
    """What an upload did, for the page."""
    parts: list[str] = []
    report = result.report
    if report is None:
        parts.append("<p><b>Nothing was added.</b></p>")
    else:
        state = "the index now answers from them" if report.published else "nothing changed"
        parts.append(
            f"<p><b>Indexed</b>: added {len(report.added)}, updated {len(report.updated)}, "
            f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, duplicates "
            f"{len(report.duplicates)}, rejected {len(result.rejected)}; "
            f"{report.chunks_embedded} chunk(s) embedded; {state}.</p>"
        )
        if result.saved:
            names = ", ".join(html.escape(n) for n in result.saved)
            parts.append(f"<p>Saved: {names}</p>")
    if result.rejected:
        items = "".join(
            f"<li>{html.escape(Path(r.origin).name if '://' not in r.origin else r.origin)}: "
            f"{html.escape(r.reason)}</li>"
            for r in result.rejected
        )
        parts.append(f"<p>Not indexed:</p><ul>{items}</ul>")
    return "".join(parts)


def split_urls(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


# ---- the page ----


def create_demo(chain: QAChain) -> gr.Blocks:
    """The chat page for `chain` (its settings say how uploads are indexed and checked)."""
    settings = chain.settings
    fast_chain = chain if chain.llm is None else QAChain(chain.retriever, None, settings)
    store = chain.retriever.store
    allow_private_urls = is_loopback_host(settings.host)

    def ask(
        question: str,
        turns: list[Turn] | None,
        fast: bool,
        outlets: list[str] | None,
        date_from: str | None,
        date_to: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        turns = list(turns or [])
        try:
            filters = build_filter(outlets, date_from, date_to)
        except ValueError as e:  # a date field filled in wrongly
            raise gr.Error(str(e)) from e
        try:
            chosen = fast_chain if fast else chain
            shown = " ".join((question or "").split())
            number = turns[-1].number + 1 if turns else 1
            history = history_of(turns, settings.history_turns)
            draft = ""
            pending = [{"role": "user", "content": question_html(shown)}]
            # While the answer is drafted the sources panel and copy text stay as they are.
            # They are sent again rather than skipped: Gradio builds a new component for every
            # `gr.skip()` and keeps it for good, two per streamed piece of every answer.
            panel, copy = panel_html(turns), (turns[-1].copy if turns else "")
            for event in chosen.events(question or "", history, (), filters):
                if isinstance(event, Answer):
                    turn = make_turn(number, shown, event)
                    kept = [*turns, turn][-MAX_TURNS:]
                    yield chat_messages(kept), kept, panel_html(kept), turn.copy, ""
                else:
                    draft += event
                    shown_draft = [*pending, {"role": "assistant", "content": draft_html(draft)}]
                    yield chat_messages(turns) + shown_draft, turns, panel, copy, ""
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        except Exception as e:
            log.exception("answering failed")
            raise gr.Error(
                "Something went wrong while answering; the details are in the server log."
            ) from e

    def new_conversation() -> tuple[Any, ...]:
        return [], [], _EMPTY_SOURCES, "", ""

    def refresh() -> tuple[Any, ...]:
        try:
            stats = index_status(store)
            examples = example_questions(store, EXAMPLE_COUNT)
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        outlets = [name for name, _ in stats.sources]
        buttons = [
            gr.Button(value=examples[i] if i < len(examples) else "", visible=i < len(examples))
            for i in range(EXAMPLE_COUNT)
        ]
        return (
            status_html(stats, settings, chain.llm is not None),
            gr.Dropdown(choices=outlets),
            *buttons,
        )

    def upload(
        files: list[str] | None,
        urls: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio fills it in)
    ) -> tuple[Any, ...]:
        links = split_urls(urls)
        if not files and not links:
            raise gr.Error("Choose files or type URLs (one a line) to add to the index.")
        if len(links) > MAX_URLS:
            raise gr.Error(f"At most {MAX_URLS} URLs at a time, please.")

        def steps(step: str, done: int, total: int) -> None:
            progress((done, total) if total else None, desc=step)

        try:
            result = add_articles(
                settings,
                chain.retriever,
                [Path(f) for f in files or ()],
                links,
                steps,
                allow_private_urls=allow_private_urls,
            )
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        except Exception as e:
            log.exception("adding articles failed")
            raise gr.Error(
                "Adding the articles failed; the index is unchanged and the details are in the "
                "server log."
            ) from e
        return upload_html(result), None, ""

    initial = initial_examples(store)
    initial_outlets = [name for name, _ in store.stats().sources]
    demo = gr.Blocks(title="citeqa", analytics_enabled=False, delete_cache=(3600, 3600))
    with demo:
        conversation = gr.State([])
        gr.Markdown(
            "# citeqa\nAnswers from your news articles. Every claim cites its passage: click a "
            "**[n]** to see it highlighted in the sources."
        )
        if chain.model_problem:
            gr.HTML(
                f'<div class="cq-banner">{html.escape(chain.model_problem)}</div>',
                elem_id="model-problem",
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="chat",
                    height=560,
                    sanitize_html=True,
                    render_markdown=True,
                    buttons=[],
                    feedback_options=None,
                    allow_file_downloads=False,
                    placeholder="Ask a question about the indexed articles.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about the articles",
                        show_label=False,
                        elem_id="question",
                        max_length=settings.max_question_chars,
                        scale=6,
                        lines=1,
                        max_lines=4,
                    )
                    ask_button = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                with gr.Row():
                    fast = gr.Checkbox(
                        label="Fast mode: the best supporting sentences, no language model",
                        value=chain.llm is None,
                        interactive=chain.llm is not None,
                        elem_id="fast",
                    )
                    new_button = gr.Button("New conversation", elem_id="new", size="sm")
                    copy_button = gr.Button("Copy answer", elem_id="copy", size="sm")
                with gr.Row(elem_id="examples"):
                    example_buttons = [
                        gr.Button(
                            initial[i] if i < len(initial) else "",
                            visible=i < len(initial),
                            size="sm",
                            elem_classes=["cq-example"],
                        )
                        for i in range(EXAMPLE_COUNT)
                    ]
                copy_box = gr.Textbox(visible="hidden", elem_id="copy-text")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(
                    _EMPTY_SOURCES,
                    label="Sources",
                    elem_id="sources",
                    max_height=560,
                    js_on_load=None,
                )
                with gr.Accordion("Filters", open=False, elem_id="filters"):
                    outlets = gr.Dropdown(
                        choices=initial_outlets,
                        multiselect=True,
                        # Uploads add outlets after start; an unknown one simply matches nothing.
                        allow_custom_value=True,
                        label="Outlets (none chosen: all)",
                        elem_id="outlets",
                    )
                    with gr.Row():
                        date_from = gr.DateTime(
                            include_time=False,
                            type="string",
                            label="Published from",
                            elem_id="date-from",
                        )
                        date_to = gr.DateTime(
                            include_time=False,
                            type="string",
                            label="Published until",
                            elem_id="date-to",
                        )
                with gr.Accordion("Add articles", open=False, elem_id="upload"):
                    files = gr.File(
                        file_count="multiple",
                        file_types=list(SUPPORTED_SUFFIXES),
                        label=f"Files ({', '.join(SUPPORTED_SUFFIXES)}; "
                        f"at most {settings.max_upload_mb} MB each)",
                        elem_id="files",
                    )
                    urls = gr.Textbox(
                        label="Or URLs of pages or feeds, one a line",
                        lines=2,
                        elem_id="urls",
                    )
                    add_button = gr.Button("Add to the index", elem_id="add")
                    upload_report = gr.HTML(elem_id="upload-report", js_on_load=None)
                    gr.Markdown(
                        f"Saved into `{html.escape(upload_folder(settings).name)}/` in the "
                        "articles folder, then indexed like `python -m index sync`."
                    )
                with gr.Accordion("Index status", open=False, elem_id="status-panel"):
                    status = gr.HTML(elem_id="status", js_on_load=None)

        ask_inputs = [question, conversation, fast, outlets, date_from, date_to]
        ask_outputs = [chatbot, conversation, sources, copy_box, question]
        question.submit(ask, ask_inputs, ask_outputs, api_name="ask")
        ask_button.click(ask, ask_inputs, ask_outputs, api_visibility="private")
        for button in example_buttons:  # an example is asked as if typed (its label)
            button.click(ask, [button, *ask_inputs[1:]], ask_outputs, api_visibility="private")
        new_button.click(
            new_conversation,
            None,
            [chatbot, conversation, sources, copy_box, question],
            queue=False,
            api_name="new_conversation",
        )
        chatbot.clear(
            new_conversation,
            None,
            [chatbot, conversation, sources, copy_box, question],
            queue=False,
            api_visibility="private",
        )
        copy_button.click(None, copy_box, None, js=COPY_JS, api_visibility="private")
        refresh_outputs = [status, outlets, *example_buttons]
        demo.load(refresh, None, refresh_outputs, api_name="index_status", queue=False)
        add_button.click(
            upload,
            [files, urls],
            [upload_report, files, urls],
            api_name="add_articles",
            concurrency_id="index",
            concurrency_limit=1,
        ).then(refresh, None, refresh_outputs, api_visibility="private", queue=False)
    return demo


def initial_examples(store: Any) -> list[str]:
    try:
        return example_questions(store, EXAMPLE_COUNT)
    except USER_ERRORS:
        return []


# ---- serving ----


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


def launch_demo(
    demo: gr.Blocks,
    settings: Settings,
    *,
    port: int | None = None,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Serve `demo` as `launch_options` says, with a bounded queue (one answer at a time, at
    most `queue_size` waiting); the local URL. `port=None`: the first free port from 7860.
    `block=False` returns at once (the caller closes the demo)."""
    problem = exposure_problem(settings)
    if problem:
        raise ValueError(problem)
    demo.queue(default_concurrency_limit=1, max_size=settings.queue_size, api_open=False)
    _, url, _ = demo.launch(
        server_port=port,
        prevent_thread_lock=not block,
        quiet=quiet,
        **launch_options(settings),
    )
    return str(url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the citeqa chat.")
    parser.add_argument("--host", help="address to bind (CITEQA_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CITEQA_PORT, default 7860)")
    return parser


_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas() -> bool:
    """Have glibc keep one malloc arena for the whole process, unless `MALLOC_ARENA_MAX` says
    otherwise; True when set. The web server hands each answer's steps to whichever of its
    worker threads is free, and with glibc's default of an arena per thread (up to 8 per core)
    memory freed in one arena is not reused by the next: under eight users the app grew by
    15-20 MB a minute without end. With one arena it levels off, at the same answer rate
    (README, Notes, "Memory under load"). Does nothing where the C library has no `mallopt`
    (not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Load the chain from `CITEQA_*` settings and serve the chat until interrupted."""
    limit_malloc_arenas()
    enforce_offline()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        overrides = {"host": args.host, "port": args.port}
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
        problem = exposure_problem(settings)
        if problem:
            print(f"Error: {problem}", file=sys.stderr)
            return 1
        # A model that fails its start-up check leaves the page running in extractive mode, with
        # a banner saying why.
        chain = build_chain(settings, degrade=True)
        chain.warm_up()
    except USER_ERRORS as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    launch_demo(create_demo(chain), settings, port=settings.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

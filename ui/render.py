"""Rendering: answers, sources, the index's status and upload reports as HTML (and the copy
text), plus the page's CSS and click script that go with them.

Pure functions, no gradio. Everything from articles, models and users is HTML-escaped here and
nowhere else; links are only ever `http(s)` URLs from index metadata.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qa import NOT_COVERED, Answer, Citation, Settings, refusal_reason
from qa.catalog import IndexStats, UploadResult
from qa.citations import format_byline, format_sources
from qa.grounding import with_markers

MAX_HISTORY_CHARS = 2000  # of each earlier answer sent back with a follow-up
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$", re.IGNORECASE)
EMPTY_SOURCES = (
    '<div class="cq-empty">Sources appear here: click a <b>[n]</b> in an answer to open the '
    "passage it cites, with the supporting text highlighted.</div>"
)
BACKEND_NAMES = {
    "local": "the local language model",
    "openai": "the language model server",
    "extractive": "extractive (the best supporting sentences, no language model)",
}

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


@dataclass(frozen=True, slots=True)
class Turn:
    """One question and its answer as the page keeps them."""

    number: int
    question: str
    answer: str  # the answer's text with its [n] markers (sent back as history)
    message: str  # the answer as the chat shows it (HTML)
    sources: str  # its section of the sources panel (HTML)
    copy: str  # what "Copy answer" copies: the text and its sources, plain


# ---- text and links ----


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


# ---- answers ----


def sentence_html(text: str, markers: Sequence[int], turn: int) -> str:
    """A checked sentence with its markers as links, placed where `qa.grounding.with_markers`
    places them: before its closing punctuation."""
    if not markers:
        return text_html(text)
    tags = "".join(f"[{n}]" for n in markers)
    placed = with_markers(text, markers)
    cut = placed.rfind(f" {tags}")  # only punctuation follows the markers
    body, end = placed[:cut], placed[cut + 1 + len(tags) :]
    links = "".join(cite_link(turn, n) for n in markers)
    return f"{text_html(body)} {links}{text_html(end)}"


def answer_html(answer: Answer, turn: int) -> str:
    """The chat message of a finished answer: its sentences (unsupported ones flagged) with
    clickable markers, any notice, and what was searched for."""
    meta: list[str] = []
    if answer.standalone_question:
        meta.append(f"Searched for: “{text_html(answer.standalone_question)}”")
    if answer.time_scope:
        meta.append(f"Searched {text_html(answer.time_scope)}")
    if answer.as_of:
        meta.append(f"As of {text_html(answer.as_of)}")
    meta.append(f"Answered by: {BACKEND_NAMES.get(answer.backend, answer.backend)}")
    meta_html = f'<div class="cq-meta">{" · ".join(meta)}</div>'
    if not answer.covered:
        return (
            '<div class="cq-answer cq-not-covered">'
            '<span class="cq-label">Not covered by the articles</span>'
            f"{text_html(NOT_COVERED)} {text_html(refusal_reason(answer.refused))} Try other "
            "words, widen the filters, or add articles about it."
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


# ---- sources ----


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
        return EMPTY_SOURCES
    sections = []
    for index, turn in enumerate(reversed(turns)):
        state = " open" if index == 0 else ""
        sections.append(
            f'<details class="cq-turn" id="turn-{turn.number}"{state}>'
            f"<summary>Answer {turn.number}: {text_html(turn.question)}</summary>"
            f"{turn.sources}</details>"
        )
    return "".join(sections)


# ---- the conversation ----


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


# ---- the index, the model, uploads ----


def banner_html(problem: str) -> str:
    """A warning across the page (the model failed its start-up check, say)."""
    return f'<div class="cq-banner">{html.escape(problem)}</div>'


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


def upload_note(folder: str) -> str:
    """Where uploads are saved (Markdown, the folder's name escaped)."""
    return (
        f"Saved into `{html.escape(folder)}/` in the "
        "articles folder, then indexed like `python -m index sync`."
    )


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

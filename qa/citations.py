"""Citation markers: find `[n]` in generated text, keep those that point at a passage, and
describe the passages they cite. Pure functions only."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from qa.types import Citation

SOURCES_HEADING = "Sources:"  # what begins the list of sources after an answer's text
# A plain http(s) URL, safe to print where a client may turn it into a link.
_PLAIN_URL = re.compile(r"^https?://[^\s<>\"'`\\\[\]]+$", re.IGNORECASE)
# Characters that make Markdown links, images, code or HTML: escaped in titles and outlets.
_MARKDOWN_ACTIVE = re.compile(r"([\\`\[\]<>])")

# "[2]", "[1, 3]" and "[1][2]" all cite; numbers are passage numbers in the prompt. The one
# definition of a marker: qa.text and qa.grounding build on this pattern.
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def find_markers(text: str) -> list[int]:
    """Every passage number cited in `text`, in order of first appearance, without repeats."""
    seen: list[int] = []
    for match in MARKER.finditer(text):
        for number in (int(n) for n in match.group(1).split(",")):
            if number not in seen:
                seen.append(number)
    return seen


def clean_markers(text: str, valid: set[int]) -> str:
    """`text` with markers that point at no passage removed (also those that removing others
    forms: "[[7]2]") and lists split into `[1][2]`."""

    def replace(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(1).split(",")]
        return "".join(f"[{n}]" for n in numbers if n in valid)

    cleaned = MARKER.sub(replace, text)
    while cleaned != text:
        text, cleaned = cleaned, MARKER.sub(replace, cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip()


def format_byline(source: str | None, published: str | None) -> str:
    """`Outlet, 2024-03-19`, leaving out what is unknown."""
    return ", ".join(part for part in (source, published) if part) or "unknown source"


def format_sources(citations: Sequence[Citation]) -> str:
    """Plain-text list of sources, one block per citation, for terminals and logs: the part of
    the passage that backs the answer, or the whole passage when that is unknown."""
    blocks = []
    for c in citations:
        head = f"[{c.marker}] {c.title} ({format_byline(c.source, c.published)})"
        link = f"\n    {c.url}" if c.url else ""
        quoted = " ... ".join(c.passage[start:end] for start, end in c.spans) or c.passage
        blocks.append(f'{head}{link}\n    "{quoted}"')
    return "\n".join(blocks)


def citation_record(citation: Citation) -> dict[str, Any]:
    """A citation as plain JSON values, the shape every interface hands out (the chat API's
    `citations`, the MCP tools, exported conversations): the article's title, outlet, date and
    URL, the passage, and the parts of it that back the answer (`supporting_text`, at the offsets
    `spans` into `passage`)."""
    return {
        "marker": citation.marker,
        "article_id": citation.article_id,
        "title": citation.title,
        "outlet": citation.source,
        "date": citation.published,
        "url": citation.url,
        "passage": citation.passage,
        "supporting_text": [citation.passage[start:end] for start, end in citation.spans],
        "spans": [[start, end] for start, end in citation.spans],
        "support": round(citation.support, 3),
    }


def plain_url(url: str | None) -> str | None:
    """`url` when it is a plain http(s) URL (no spaces, quotes, angle or square brackets),
    else None."""
    if url and _PLAIN_URL.match(url.strip()):
        return url.strip()
    return None


def markdown_text(text: str) -> str:
    """`text` with the characters that would make Markdown links, images, code or HTML escaped
    (article metadata shown by clients that render Markdown stays text)."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", " ".join(text.split()))


def sources_list(citations: Sequence[Citation]) -> str:
    """The short list of sources that follows an answer's text for chat clients: one line per
    citation, `- [1] Title (Outlet, 2024-03-19) https://...`; empty without citations."""
    if not citations:
        return ""
    lines = [SOURCES_HEADING]
    for c in citations:
        byline = markdown_text(format_byline(c.source, c.published))
        url = plain_url(c.url)
        lines.append(
            f"- [{c.marker}] {markdown_text(c.title)} ({byline})" + (f" {url}" if url else "")
        )
    return "\n".join(lines)

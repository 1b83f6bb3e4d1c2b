"""The Gradio chat UI: `create_demo(chain)` builds it, `main()` serves it on 127.0.0.1.

This is the only module that imports gradio.
"""

from __future__ import annotations

import argparse
import html
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from qa import Answer, Citation, QAChain, Settings, build_chain, enforce_offline
from qa.citations import format_byline
from qa.errors import USER_ERRORS

log = logging.getLogger(__name__)

SOURCES_HEADING = "**Sources**"
EXAMPLES = [
    "Who is Wang Lei?",
    "Who won Super Bowl 50?",
    "What caused the 1973 oil crisis?",
]
_SAFE_URL = re.compile(r"^https?://[^\s()<>\"']+$")


def render_citation(citation: Citation) -> str:
    """One source as Markdown: number, title, outlet, date, link and the passage, all escaped."""
    head = (
        f"**[{citation.marker}] {escape(citation.title)}** "
        f"— {escape(format_byline(citation.source, citation.published))}"
    )
    if citation.url and _SAFE_URL.match(citation.url):
        head += f" · [link]({citation.url})"
    quoted = "\n".join(
        f"> {escape(line)}" for line in citation.passage.splitlines() if line.strip()
    )
    return f"{head}\n\n{quoted}"


def render_answer(answer: Answer) -> str:
    """The chat message for a finished answer: its text, then its sources."""
    text = escape(answer.text)
    if not answer.citations:
        return text
    sources = "\n\n".join(render_citation(c) for c in answer.citations)
    return f"{text}\n\n---\n{SOURCES_HEADING}\n\n{sources}"


def escape(text: str) -> str:
    """Article and model text shown as text: HTML escaped, Markdown images and links defused."""
    return html.escape(text, quote=False).replace("![", "!\\[").replace("](", "]\\(")


def message_text(content: Any) -> str:
    """The plain text of a Gradio chat message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return " ".join(message_text(part) for part in content)
    return ""


def to_history(messages: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(question, answer) pairs from Gradio's message list, without the sources sections."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for message in messages:
        text = message_text(message.get("content"))
        if message.get("role") == "user":
            question = text
        elif message.get("role") == "assistant" and question is not None:
            pairs.append((question, text.split(f"\n---\n{SOURCES_HEADING}")[0].strip()))
            question = None
    return pairs


def create_demo(chain: QAChain) -> gr.Blocks:
    """The chat page for `chain`: streamed answers that end with their cited sources."""

    def respond(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        try:
            draft = ""
            for event in chain.events(message, to_history(history)):
                if isinstance(event, Answer):
                    yield render_answer(event)
                else:
                    draft += event
                    yield escape(draft)
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from e
        except Exception as e:
            log.exception("answering failed")
            raise gr.Error(
                "Something went wrong while answering; the details are in the server log."
            ) from e

    demo = gr.Blocks(title="citeqa", analytics_enabled=False)
    with demo:
        gr.ChatInterface(
            respond,
            chatbot=gr.Chatbot(
                label="citeqa",
                elem_id="chat",
                height=640,
                sanitize_html=True,
                render_markdown=True,
            ),
            textbox=gr.Textbox(
                placeholder="Ask a question about the articles", elem_id="question", scale=7
            ),
            title="citeqa",
            description="Answers from your news articles. Every claim cites its passage.",
            examples=EXAMPLES,
            run_examples_on_click=True,
            analytics_enabled=False,
            api_name="chat",
        )
    return demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the citeqa chat.")
    parser.add_argument("--host", help="address to bind (CITEQA_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CITEQA_PORT, default 7860)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the chain from `CITEQA_*` settings and serve the chat until interrupted."""
    enforce_offline()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        overrides = {"host": args.host, "port": args.port}
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
        chain = build_chain(settings)
    except USER_ERRORS as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    demo = create_demo(chain)
    demo.queue(default_concurrency_limit=1, max_size=32).launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        show_error=False,
        footer_links=[],
        theme=gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The page: `create_demo(chain)` lays out the chat, sources panel, filters, uploads, index
status and saved conversations (`ui.saved`), and wires them to the handlers (asking with streamed
drafts, each answer saved, a new conversation, the index's status and example questions, uploads
with progress)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from qa import Answer, QAChain, Settings
from qa.catalog import (
    SUPPORTED_SUFFIXES,
    add_articles,
    example_questions,
    index_status,
    is_loopback_host,
    upload_folder,
)
from qa.errors import CiteqaError
from ui.forms import build_filter, parse_date, split_urls
from ui.render import (
    EMPTY_SOURCES,
    Turn,
    banner_html,
    chat_messages,
    draft_html,
    history_of,
    make_turn,
    panel_html,
    question_html,
    status_html,
    upload_html,
    upload_note,
)
from ui.saved import SavedConversations, open_conversations, saved_panel, wire_saved

log = logging.getLogger(__name__)

MAX_TURNS = 20  # questions a conversation keeps on the page (older ones scroll away)
MAX_URLS = 20  # URLs one upload may name
EXAMPLE_COUNT = 3

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


# ---- the handlers ----


@contextlib.contextmanager
def page_errors(log_line: str, failure: str) -> Iterator[None]:
    """citeqa's own errors shown on the page as they are; anything else logged with
    `log_line` and shown as `failure` (the one place the page turns errors into text)."""
    try:
        yield
    except CiteqaError as e:
        raise gr.Error(str(e)) from e
    except Exception as e:
        log.exception(log_line)
        raise gr.Error(failure) from e


class Handlers:
    """The page's event handlers for one chain (its settings say how uploads are indexed and
    checked)."""

    def __init__(self, chain: QAChain) -> None:
        self.chain = chain
        self.settings = chain.settings
        self.fast_chain = (
            chain if chain.llm is None else QAChain(chain.retriever, None, chain.settings)
        )
        self.store = chain.retriever.store
        self.allow_private_urls = is_loopback_host(chain.settings.host)
        saved = open_conversations(chain.settings)
        self.saved = SavedConversations(saved, MAX_TURNS) if saved is not None else None

    def ask(
        self,
        question: str,
        turns: list[Turn] | None,
        fast: bool,
        outlets: list[str] | None,
        date_from: str | None,
        date_to: str | None,
        as_of: str | None = None,
        saved_id: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        turns = list(turns or [])
        try:
            filters = build_filter(outlets, date_from, date_to)
            day = parse_date(as_of, "as-of")
        except ValueError as e:  # a date field filled in wrongly
            raise gr.Error(str(e)) from e
        failure = "Something went wrong while answering; the details are in the server log."
        with page_errors("answering failed", failure):
            chosen = self.fast_chain if fast else self.chain
            shown = " ".join((question or "").split())
            number = turns[-1].number + 1 if turns else 1
            history = history_of(turns, self.settings.history_turns)
            draft = ""
            pending = [{"role": "user", "content": question_html(shown)}]
            # While the answer is drafted the sources panel and copy text stay as they are.
            # They are sent again rather than skipped: Gradio builds a new component for every
            # `gr.skip()` and keeps it for good, two per streamed piece of every answer.
            panel, copy = panel_html(turns), (turns[-1].copy if turns else "")
            for event in chosen.events(question or "", history, (), filters, day):
                if isinstance(event, Answer):
                    turn = make_turn(number, shown, event)
                    kept = [*turns, turn][-MAX_TURNS:]
                    if self.saved is not None:
                        saved_id = self.saved.save(request, saved_id, shown, event)
                    yield chat_messages(kept), kept, panel_html(kept), turn.copy, "", saved_id
                else:
                    draft += event
                    shown_draft = [*pending, {"role": "assistant", "content": draft_html(draft)}]
                    yield chat_messages(turns) + shown_draft, turns, panel, copy, "", saved_id

    def new_conversation(self) -> tuple[Any, ...]:
        return [], [], EMPTY_SOURCES, "", "", None

    def refresh(self) -> tuple[Any, ...]:
        try:
            stats = index_status(self.store)
            examples = example_questions(self.store, EXAMPLE_COUNT)
        except CiteqaError as e:
            raise gr.Error(str(e)) from e
        outlets = [name for name, _ in stats.sources]
        buttons = [
            gr.Button(value=examples[i] if i < len(examples) else "", visible=i < len(examples))
            for i in range(EXAMPLE_COUNT)
        ]
        return (
            status_html(stats, self.settings, self.chain.llm is not None),
            gr.Dropdown(choices=outlets),
            *buttons,
        )

    def upload(
        self,
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

        failure = (
            "Adding the articles failed; the index is unchanged and the details are in the "
            "server log."
        )
        with page_errors("adding articles failed", failure):
            result = add_articles(
                self.settings,
                self.chain.retriever,
                [Path(f) for f in files or ()],
                links,
                steps,
                allow_private_urls=self.allow_private_urls,
            )
        return upload_html(result), None, ""


def initial_examples(store: Any) -> list[str]:
    try:
        return example_questions(store, EXAMPLE_COUNT)
    except CiteqaError:
        return []


# ---- the layout ----


@dataclass(frozen=True, slots=True)
class ChatColumn:
    """The left column's components: the chat, the question box and its buttons."""

    chatbot: gr.Chatbot
    question: gr.Textbox
    ask_button: gr.Button
    fast: gr.Checkbox
    new_button: gr.Button
    copy_button: gr.Button
    example_buttons: list[gr.Button]
    copy_box: gr.Textbox


@dataclass(frozen=True, slots=True)
class SideColumn:
    """The right column's components: sources, filters, uploads and the index's status."""

    sources: gr.HTML
    outlets: gr.Dropdown
    date_from: gr.DateTime
    date_to: gr.DateTime
    as_of: gr.DateTime
    files: gr.File
    urls: gr.Textbox
    add_button: gr.Button
    upload_report: gr.HTML
    status: gr.HTML


def chat_column(chain: QAChain, examples: list[str]) -> ChatColumn:
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
            max_length=chain.settings.max_question_chars,
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
                examples[i] if i < len(examples) else "",
                visible=i < len(examples),
                size="sm",
                elem_classes=["cq-example"],
            )
            for i in range(EXAMPLE_COUNT)
        ]
    copy_box = gr.Textbox(visible="hidden", elem_id="copy-text")
    return ChatColumn(
        chatbot, question, ask_button, fast, new_button, copy_button, example_buttons, copy_box
    )


def side_column(settings: Settings, outlet_names: list[str]) -> SideColumn:
    gr.Markdown("### Sources")
    sources = gr.HTML(
        EMPTY_SOURCES, label="Sources", elem_id="sources", max_height=560, js_on_load=None
    )
    with gr.Accordion("As of, outlets, dates", open=False, elem_id="filters"):
        outlets = gr.Dropdown(
            choices=outlet_names,
            multiselect=True,
            # Uploads add outlets after start; an unknown one simply matches nothing.
            allow_custom_value=True,
            label="Outlets (none chosen: all)",
            elem_id="outlets",
        )
        as_of = gr.DateTime(
            include_time=False,
            type="string",
            label="As of (empty: today): nothing newer is used; \u201cthis week\u201d ends here",
            elem_id="as-of",
        )
        with gr.Row():
            date_from = gr.DateTime(
                include_time=False, type="string", label="Published from", elem_id="date-from"
            )
            date_to = gr.DateTime(
                include_time=False, type="string", label="Published until", elem_id="date-to"
            )
    with gr.Accordion("Add articles", open=False, elem_id="upload"):
        files = gr.File(
            file_count="multiple",
            file_types=list(SUPPORTED_SUFFIXES),
            label=f"Files ({', '.join(SUPPORTED_SUFFIXES)}; "
            f"at most {settings.max_upload_mb} MB each)",
            elem_id="files",
        )
        urls = gr.Textbox(label="Or URLs of pages or feeds, one a line", lines=2, elem_id="urls")
        add_button = gr.Button("Add to the index", elem_id="add")
        upload_report = gr.HTML(elem_id="upload-report", js_on_load=None)
        gr.Markdown(upload_note(upload_folder(settings).name))
    with gr.Accordion("Index status", open=False, elem_id="status-panel"):
        status = gr.HTML(elem_id="status", js_on_load=None)
    return SideColumn(
        sources, outlets, date_from, date_to, as_of, files, urls, add_button, upload_report, status
    )


def wire(
    demo: gr.Blocks,
    handlers: Handlers,
    conversation: gr.State,
    saved_id: gr.State,
    chat: ChatColumn,
    side: SideColumn,
) -> list[Any]:
    """Connect the components to the handlers (the API names are what clients call; the saved
    conversation's id, a state, is no part of them); the outputs that show a conversation."""
    fields = [side.outlets, side.date_from, side.date_to, side.as_of]
    ask_inputs = [chat.question, conversation, chat.fast, *fields, saved_id]
    ask_outputs = [chat.chatbot, conversation, side.sources, chat.copy_box, chat.question, saved_id]
    chat.question.submit(handlers.ask, ask_inputs, ask_outputs, api_name="ask")
    chat.ask_button.click(handlers.ask, ask_inputs, ask_outputs, api_visibility="private")
    for button in chat.example_buttons:  # an example is asked as if typed (its label)
        button.click(handlers.ask, [button, *ask_inputs[1:]], ask_outputs, api_visibility="private")
    chat.new_button.click(
        handlers.new_conversation,
        None,
        ask_outputs,
        queue=False,
        api_name="new_conversation",
    )
    chat.chatbot.clear(
        handlers.new_conversation, None, ask_outputs, queue=False, api_visibility="private"
    )
    chat.copy_button.click(None, chat.copy_box, None, js=COPY_JS, api_visibility="private")
    refresh_outputs = [side.status, side.outlets, *chat.example_buttons]
    demo.load(handlers.refresh, None, refresh_outputs, api_name="index_status", queue=False)
    side.add_button.click(
        handlers.upload,
        [side.files, side.urls],
        [side.upload_report, side.files, side.urls],
        api_name="add_articles",
        concurrency_id="index",
        concurrency_limit=1,
    ).then(handlers.refresh, None, refresh_outputs, api_visibility="private", queue=False)
    return ask_outputs


# ---- the page ----


def create_demo(chain: QAChain) -> gr.Blocks:
    """The chat page for `chain` (its settings say how uploads are indexed and checked)."""
    handlers = Handlers(chain)
    initial = initial_examples(handlers.store)
    initial_outlets = [name for name, _ in handlers.store.stats().sources]
    demo = gr.Blocks(title="citeqa", analytics_enabled=False, delete_cache=(3600, 3600))
    with demo:
        conversation = gr.State([])
        saved_id = gr.State(None)  # the page's conversation among the saved ones
        gr.Markdown(
            "# citeqa\nAnswers from your news articles. Every claim cites its passage: click a "
            "**[n]** to see it highlighted in the sources."
        )
        if chain.model_problem:
            gr.HTML(banner_html(chain.model_problem), elem_id="model-problem")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat = chat_column(chain, initial)
            with gr.Column(scale=2):
                side = side_column(chain.settings, initial_outlets)
                saved = saved_panel() if handlers.saved is not None else None
        shown = wire(demo, handlers, conversation, saved_id, chat, side)
        if handlers.saved is not None and saved is not None:
            wire_saved(demo, handlers.saved, saved, saved_id, shown)
    return demo

"""The page's saved conversations: each answer saved as it is given (`qa.conversations`), per
login, and a panel to list, reopen, delete and export them (Markdown or JSON, with their sources).

`SavedConversations.save` is called by the page's ask handler; `saved_panel` lays out the panel
and `wire_saved` connects it. A page's current conversation is a `gr.State` holding its id: the
first answer of a new conversation creates it, "New conversation" forgets it, and a reload starts
afresh with the saved ones listed, to reopen.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from qa import Answer, Settings
from qa.conversations import (
    ConversationStore,
    ConversationSummary,
    conversations_path,
    export_json,
    export_markdown,
    export_name,
    saved_turn,
)
from qa.errors import CiteqaError
from ui.render import EMPTY_SOURCES, chat_messages, make_turn, panel_html

log = logging.getLogger(__name__)

EXPORT_AGE_S = 3600  # exports are written to a temporary folder and removed after this
EXPORTS = {"md": export_markdown, "json": export_json}  # file suffix: how it is written


def open_conversations(settings: Settings) -> ConversationStore | None:
    """The store of saved conversations these settings name, or None when saving is off."""
    if not settings.save_conversations:
        return None
    return ConversationStore(conversations_path(settings.index_dir, settings.conversations_file))


def owner_of(request: gr.Request | None) -> str:
    """Whose conversations a request sees: the login's user name, or "" without a login."""
    return str(getattr(request, "username", None) or "")


def choice_label(summary: ConversationSummary) -> str:
    day = summary.created_at[:16].replace("T", " ")
    turns = f"{summary.turns} answer" + ("" if summary.turns == 1 else "s")
    return f"{summary.title} · {day} · {turns}"


class SavedConversations:
    """The saved conversations' handlers over one store."""

    def __init__(self, store: ConversationStore, max_turns: int) -> None:
        self.store = store
        self.max_turns = max_turns  # turns shown on the page (the latest)
        self._exports: Path | None = None  # made at the first export, removed at exit

    def save(
        self, request: gr.Request | None, saved_id: str | None, question: str, answer: Answer
    ) -> str | None:
        """Save `answer` to the page's conversation (started with this answer when it has none
        yet); the conversation's id. A store that fails is logged, and the answer still shown."""
        owner = owner_of(request)
        turn = saved_turn(question, answer)
        try:
            if saved_id and self.store.add_turn(owner, saved_id, turn):
                return saved_id
            created = self.store.create(owner, question)
            self.store.add_turn(owner, created, turn)
            return created
        except CiteqaError as e:
            log.warning("the answer was not saved: %s", e)
            return saved_id

    def choices(self, request: gr.Request) -> Any:
        """The list of the owner's conversations, most recent first."""
        try:
            summaries = self.store.list(owner_of(request))
        except CiteqaError as e:
            raise gr.Error(str(e)) from e
        return gr.Dropdown(
            choices=[(choice_label(s), s.id) for s in summaries],
            value=summaries[0].id if summaries else None,
        )

    def open(self, selected: str | None, request: gr.Request) -> tuple[Any, ...]:
        """The chosen conversation back on the page (its latest turns), as the current one:
        what the ask handler's outputs take (chat, turns, sources, copy text, question box,
        saved id)."""
        if not selected:
            raise gr.Error("Choose a saved conversation first.")
        try:
            conversation = self.store.load(owner_of(request), selected)
        except CiteqaError as e:
            raise gr.Error(str(e)) from e
        if conversation is None:
            raise gr.Error("That conversation is no longer saved.")
        first = max(0, len(conversation.turns) - self.max_turns)
        turns = [
            make_turn(number, saved.question, saved.answer())
            for number, saved in enumerate(conversation.turns[first:], start=first + 1)
        ]
        copy = turns[-1].copy if turns else ""
        sources = panel_html(turns) if turns else EMPTY_SOURCES
        return chat_messages(turns), turns, sources, copy, "", conversation.id

    def delete(self, selected: str | None, saved_id: str | None, request: gr.Request) -> Any:
        """Forget the chosen conversation; the page's current one is kept on the page but no
        longer saved to (its next answer starts a new saved conversation)."""
        if not selected:
            raise gr.Error("Choose a saved conversation first.")
        try:
            self.store.delete(owner_of(request), selected)
        except CiteqaError as e:
            raise gr.Error(str(e)) from e
        return self.choices(request), (None if selected == saved_id else saved_id)

    def export_markdown(self, selected: str | None, request: gr.Request) -> str:
        return self.export(selected, "md", owner_of(request))

    def export_json(self, selected: str | None, request: gr.Request) -> str:
        return self.export(selected, "json", owner_of(request))

    def export(self, selected: str | None, kind: str, owner: str) -> str:
        """The owner's chosen conversation written as Markdown (`kind` "md") or JSON: the path
        of a file to download (removed after `EXPORT_AGE_S`)."""
        if not selected:
            raise gr.Error("Choose a saved conversation first.")
        try:
            conversation = self.store.load(owner, selected)
        except CiteqaError as e:
            raise gr.Error(str(e)) from e
        if conversation is None:
            raise gr.Error("That conversation is no longer saved.")
        folder = Path(tempfile.mkdtemp(dir=self._exports_folder()))
        target = folder / export_name(conversation, f".{kind}")
        target.write_text(EXPORTS[kind](conversation), encoding="utf-8")
        return str(target)

    def _exports_folder(self) -> Path:
        """The folder of this process's exports, made at the first export (a page that never
        exports leaves no folder behind, even when the process is killed), its old ones removed."""
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="citeqa-exports-"))
            atexit.register(shutil.rmtree, self._exports, ignore_errors=True)
        cutoff = time.time() - EXPORT_AGE_S
        for folder in self._exports.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        return self._exports


@dataclass(frozen=True, slots=True)
class SavedPanel:
    """The saved conversations' components."""

    conversations: gr.Dropdown
    open_button: gr.Button
    delete_button: gr.Button
    markdown_button: gr.Button
    json_button: gr.Button
    export: gr.File


def saved_panel() -> SavedPanel:
    with gr.Accordion("Saved conversations", open=False, elem_id="saved"):
        conversations = gr.Dropdown(
            choices=[], label="Conversations (most recent first)", elem_id="saved-list"
        )
        with gr.Row():
            open_button = gr.Button("Open", size="sm", elem_id="saved-open")
            delete_button = gr.Button("Delete", size="sm", elem_id="saved-delete")
        with gr.Row():
            markdown_button = gr.Button("Export Markdown", size="sm", elem_id="saved-markdown")
            json_button = gr.Button("Export JSON", size="sm", elem_id="saved-json")
        export = gr.File(label="Export", interactive=False, elem_id="saved-export")
    return SavedPanel(
        conversations, open_button, delete_button, markdown_button, json_button, export
    )


def wire_saved(
    demo: gr.Blocks,
    saved: SavedConversations,
    panel: SavedPanel,
    saved_id: gr.State,
    page_outputs: list[Any],
) -> None:
    """Connect the panel: the list filled when the page loads and whenever the page's saved
    conversation changes; open fills the page's outputs (those of the ask handler)."""
    private: dict[str, Any] = {"api_visibility": "private", "queue": False}
    demo.load(saved.choices, None, panel.conversations, **private)
    saved_id.change(saved.choices, None, panel.conversations, **private)
    panel.open_button.click(saved.open, panel.conversations, page_outputs, **private)
    panel.delete_button.click(
        saved.delete, [panel.conversations, saved_id], [panel.conversations, saved_id], **private
    )
    panel.markdown_button.click(saved.export_markdown, panel.conversations, panel.export, **private)
    panel.json_button.click(saved.export_json, panel.conversations, panel.export, **private)

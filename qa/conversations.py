"""Saved conversations: each question and checked answer of the web page kept in a small SQLite
file beside the index, per login, to be listed, reopened, deleted and exported (Markdown or JSON,
with their sources).

The domain types are frozen dataclasses and know no vendor library; `ConversationStore` is the
only code that touches the file (the standard library's sqlite3). Every read and write names
its owner (the login's user name, or "" without a login), so nobody sees another's
conversations. A conversation keeps its answers as they were checked: the text with its markers,
the citations with their passages and supporting spans, and the checked sentences, enough to
draw the answer again exactly as the page first showed it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.citations import citation_record, format_byline, markdown_text, plain_url
from qa.errors import ConversationStoreError
from qa.types import Answer, CheckedSentence, Citation

log = logging.getLogger(__name__)

FILE_NAME = "conversations.sqlite3"  # in the index folder unless CITEQA_CONVERSATIONS_FILE says
MAX_CONVERSATIONS = 200  # per owner: starting one more forgets the least recently used
MAX_SAVED_TURNS = 200  # per conversation: older turns are forgotten past this
MAX_TITLE_CHARS = 80
FORMAT_VERSION = 1  # of a turn's JSON record and of the JSON export
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
"""


@dataclass(frozen=True, slots=True)
class SavedTurn:
    """One question and its checked answer, as saved."""

    question: str
    text: str  # the answer's text with its [n] markers
    citations: tuple[Citation, ...]
    sentences: tuple[CheckedSentence, ...]
    covered: bool
    backend: str
    notice: str | None
    searched_for: str | None  # the standalone question retrieval used, for a follow-up
    asked_at: str  # ISO 8601, UTC
    as_of: str | None = None  # the date the question was asked as of (YYYY-MM-DD)
    time_scope: str | None = None  # the publication days searched, when it named a time
    refused: str | None = None  # why it is "not covered" (`qa.types.REFUSALS`)

    @property
    def unsupported(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.sentences if not s.supported)

    def answer(self) -> Answer:
        """The answer to draw again (the retrieved passages beyond the cited ones are not kept)."""
        return Answer(
            question=self.question,
            text=self.text,
            citations=self.citations,
            retrieved=(),
            covered=self.covered,
            sentences=self.sentences,
            backend=self.backend,
            notice=self.notice,
            standalone_question=self.searched_for,
            as_of=self.as_of,
            time_scope=self.time_scope,
            refused=self.refused,
        )


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A saved conversation as the list shows it."""

    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int


@dataclass(frozen=True, slots=True)
class Conversation:
    """A saved conversation with its turns, oldest first."""

    id: str
    title: str
    created_at: str
    updated_at: str
    turns: tuple[SavedTurn, ...]


def saved_turn(question: str, answer: Answer, asked_at: str | None = None) -> SavedTurn:
    """What is saved of `answer` to `question` (asked now unless `asked_at` says when)."""
    return SavedTurn(
        question=question,
        text=answer.text,
        citations=answer.citations,
        sentences=answer.sentences,
        covered=answer.covered,
        backend=answer.backend,
        notice=answer.notice,
        searched_for=answer.standalone_question,
        asked_at=asked_at or now(),
        as_of=answer.as_of,
        time_scope=answer.time_scope,
        refused=answer.refused,
    )


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def title_of(question: str) -> str:
    """A conversation's title: its first question, on one line, cut to `MAX_TITLE_CHARS`."""
    text = " ".join(question.split())
    if len(text) <= MAX_TITLE_CHARS:
        return text or "Untitled"
    return text[: MAX_TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def conversations_path(index_dir: Path, configured: Path | None = None) -> Path:
    """Where conversations are saved: `configured` (`CITEQA_CONVERSATIONS_FILE`), else beside
    the index's collections in `index_dir` (`CITEQA_INDEX_DIR`)."""
    return configured or index_dir / FILE_NAME


# ---- turns as JSON records ----


def turn_record(turn: SavedTurn) -> dict[str, Any]:
    """A turn as the store keeps it: every field, citations and sentences whole."""
    return {
        "version": FORMAT_VERSION,
        "question": turn.question,
        "text": turn.text,
        "covered": turn.covered,
        "backend": turn.backend,
        "notice": turn.notice,
        "searched_for": turn.searched_for,
        "asked_at": turn.asked_at,
        "as_of": turn.as_of,
        "time_scope": turn.time_scope,
        "refused": turn.refused,
        "citations": [
            {
                "marker": c.marker,
                "article_id": c.article_id,
                "title": c.title,
                "source": c.source,
                "url": c.url,
                "published": c.published,
                "passage": c.passage,
                "start": c.start,
                "end": c.end,
                "score": c.score,
                "spans": [list(span) for span in c.spans],
                "support": c.support,
            }
            for c in turn.citations
        ],
        "sentences": [
            {"text": s.text, "markers": list(s.markers), "supported": s.supported, "score": s.score}
            for s in turn.sentences
        ],
    }


def read_turn(record: Mapping[str, Any]) -> SavedTurn:
    """A turn from its record (`turn_record`'s inverse)."""
    citations = tuple(
        Citation(
            marker=int(c["marker"]),
            article_id=str(c["article_id"]),
            title=str(c["title"]),
            source=c.get("source"),
            url=c.get("url"),
            published=c.get("published"),
            passage=str(c["passage"]),
            start=int(c["start"]),
            end=int(c["end"]),
            score=float(c["score"]),
            spans=tuple((int(a), int(b)) for a, b in c.get("spans", ())),
            support=float(c.get("support", 0.0)),
        )
        for c in record.get("citations", ())
    )
    sentences = tuple(
        CheckedSentence(
            text=str(s["text"]),
            markers=tuple(int(m) for m in s.get("markers", ())),
            supported=bool(s["supported"]),
            score=None if s.get("score") is None else float(s["score"]),
        )
        for s in record.get("sentences", ())
    )
    return SavedTurn(
        question=str(record["question"]),
        text=str(record["text"]),
        citations=citations,
        sentences=sentences,
        covered=bool(record["covered"]),
        backend=str(record.get("backend", "local")),
        notice=record.get("notice"),
        searched_for=record.get("searched_for"),
        asked_at=str(record.get("asked_at", "")),
        as_of=record.get("as_of"),
        time_scope=record.get("time_scope"),
        refused=record.get("refused"),
    )


# ---- the store ----


class ConversationStore:
    """Saved conversations in one SQLite file (created on first use). Each call opens its own
    connection, so the page's handler threads can share one store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    def create(self, owner: str, first_question: str) -> str:
        """A new, empty conversation titled by its first question; its id (unguessable). Past
        `MAX_CONVERSATIONS`, the owner's least recently used ones are forgotten."""
        conversation_id = secrets.token_urlsafe(12)
        stamp = now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (conversation_id, owner, title_of(first_question), stamp, stamp),
            )
            db.execute(
                "DELETE FROM conversations WHERE owner = ? AND id NOT IN (SELECT id FROM "
                "conversations WHERE owner = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?)",
                (owner, owner, MAX_CONVERSATIONS),
            )
        return conversation_id

    def add_turn(self, owner: str, conversation_id: str, turn: SavedTurn) -> bool:
        """Append `turn`; False when the owner has no such conversation (deleted meanwhile)."""
        record = json.dumps(turn_record(turn), ensure_ascii=False)
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ? AND owner = ?",
                (turn.asked_at, conversation_id, owner),
            ).rowcount
            if not updated:
                return False
            (last,) = db.execute(
                "SELECT COALESCE(MAX(position), 0) FROM turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            db.execute(
                "INSERT INTO turns (conversation_id, position, record) VALUES (?, ?, ?)",
                (conversation_id, last + 1, record),
            )
            db.execute(
                "DELETE FROM turns WHERE conversation_id = ? AND position <= ?",
                (conversation_id, last + 1 - MAX_SAVED_TURNS),
            )
        return True

    def list(self, owner: str) -> list[ConversationSummary]:
        """The owner's conversations, most recently used first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT c.id, c.title, c.created_at, c.updated_at, COUNT(t.position) "
                "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id "
                "WHERE c.owner = ? GROUP BY c.id ORDER BY c.updated_at DESC, c.rowid DESC",
                (owner,),
            ).fetchall()
        return [
            ConversationSummary(str(a), str(b), str(c), str(d), int(e)) for a, b, c, d, e in rows
        ]

    def load(self, owner: str, conversation_id: str) -> Conversation | None:
        """The owner's conversation with its turns, or None (no such conversation, or not
        theirs)."""
        with self._transaction() as db:
            head = db.execute(
                "SELECT id, title, created_at, updated_at FROM conversations "
                "WHERE id = ? AND owner = ?",
                (conversation_id, owner),
            ).fetchone()
            if head is None:
                return None
            records = db.execute(
                "SELECT record FROM turns WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        try:
            turns = tuple(read_turn(json.loads(record)) for (record,) in records)
        except (ValueError, KeyError, TypeError) as e:
            raise ConversationStoreError(
                f"The saved conversation {conversation_id} in {self.path} is damaged ({e}); "
                "delete it from the list."
            ) from e
        conversation_id, title, created_at, updated_at = head
        return Conversation(conversation_id, title, created_at, updated_at, turns)

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Forget the owner's conversation; False when there was none."""
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
            ).rowcount
        return bool(deleted)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction (committed at the end, rolled back on error); every
        SQLite error becomes a `ConversationStoreError` saying what to do."""
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from e
        try:
            db.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                db.executescript(_SCHEMA)
                self._ready = True
            with db:
                yield db
        except sqlite3.Error as e:
            raise self._error(e) from e
        finally:
            db.close()

    def _error(self, error: Exception) -> ConversationStoreError:
        log.warning("saved conversations at %s: %s", self.path, error)
        return ConversationStoreError(
            f"Saved conversations cannot be read or written at {self.path} ({error}). Check that "
            "the folder is writable, or set CITEQA_CONVERSATIONS_FILE (or "
            "CITEQA_SAVE_CONVERSATIONS=false)."
        )


# ---- exports ----


def export_json(conversation: Conversation) -> str:
    """The conversation as JSON: each question, the answer's text and check, and its sources
    in the shape the chat API gives them (`qa.citations.citation_record`)."""
    document = {
        "format": "citeqa-conversation",
        "version": FORMAT_VERSION,
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "turns": [
            {
                "question": t.question,
                "answer": t.text,
                "covered": t.covered,
                "refused": t.refused,
                "answered_by": t.backend,
                "notice": t.notice,
                "unsupported": list(t.unsupported),
                "searched_for": t.searched_for,
                "asked_at": t.asked_at,
                "as_of": t.as_of,
                "searched_days": t.time_scope,
                "citations": [citation_record(c) for c in t.citations],
            }
            for t in conversation.turns
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def export_markdown(conversation: Conversation) -> str:
    """The conversation as Markdown: each question as a heading, the answer with its [n]
    markers, then its sources (title, outlet, date, link) with the text that backs the answer
    quoted. Article text and metadata are escaped so that they stay text."""
    lines = [
        f"# {markdown_text(conversation.title)}",
        "",
        f"Saved from citeqa; started {conversation.created_at}, last answer "
        f"{conversation.updated_at}.",
    ]
    for number, turn in enumerate(conversation.turns, start=1):
        lines += ["", f"## {number}. {markdown_text(turn.question)}", "", turn.text]
        if turn.as_of:
            searched = f"; searched {markdown_text(turn.time_scope)}" if turn.time_scope else ""
            lines += ["", f"*As of {turn.as_of}{searched}.*"]
        if turn.notice:
            lines += ["", f"*Note: {markdown_text(turn.notice)}*"]
        lines += [f"\n*Unsupported by the articles:* {markdown_text(s)}" for s in turn.unsupported]
        if not turn.citations:
            continue
        lines += ["", "Sources:", ""]
        for c in turn.citations:
            byline = markdown_text(format_byline(c.source, c.published))
            url = plain_url(c.url)
            lines.append(
                f"- [{c.marker}] {markdown_text(c.title)} ({byline})" + (f" <{url}>" if url else "")
            )
            quoted = [c.passage[start:end] for start, end in c.spans] or [c.passage]
            lines += [f"  > {markdown_text(text)}" for text in quoted]
    return "\n".join(lines) + "\n"


def export_name(conversation: Conversation, suffix: str) -> str:
    """A file name for an export: the title's letters and digits, the date, `suffix`."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in conversation.title.lower())
    stem = "-".join(part for part in stem.split("-") if part)[:48] or "conversation"
    return f"citeqa-{stem}-{conversation.updated_at[:10]}{suffix}"

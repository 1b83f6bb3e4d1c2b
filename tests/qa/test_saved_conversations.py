"""Saved conversations: kept in a real SQLite file across store objects (a restart), per owner,
bounded, and exported as Markdown and JSON with their sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import NOT_COVERED, Answer
from qa import conversations as saved
from qa.conversations import (
    ConversationStore,
    conversations_path,
    export_json,
    export_markdown,
    export_name,
    read_turn,
    saved_turn,
    title_of,
    turn_record,
)
from qa.errors import ConversationStoreError
from qa.types import CheckedSentence
from tests.support.citations import PASSAGE, SPAN, xinhua_citation

CITATION = xinhua_citation(start=10, support=0.99)
ANSWER = Answer(
    question="Who is Wang Lei?",
    text="Wang Lei is the coordinator for cyber and digital affairs [1]. He spoke in Paris.",
    citations=(CITATION,),
    retrieved=(),
    sentences=(
        CheckedSentence(
            "Wang Lei is the coordinator for cyber and digital affairs.", (1,), True, 0.9
        ),
        CheckedSentence("He spoke in Paris.", (), False, None),
    ),
    backend="local",
    notice="A <b>notice</b>.",
    standalone_question="Who is Wang Lei, the diplomat?",
)
NOT = Answer(
    question="Banana bread?",
    text=NOT_COVERED,
    citations=(),
    retrieved=(),
    covered=False,
    refused="gate",
)


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(tmp_path / "index" / "conversations.sqlite3")


def test_a_turn_is_saved_whole_and_drawn_again_the_same(store: ConversationStore) -> None:
    turn = saved_turn("Who is Wang Lei?", ANSWER, asked_at="2024-03-20T08:00:00Z")
    assert read_turn(json.loads(json.dumps(turn_record(turn)))) == turn
    again = turn.answer()
    assert (again.text, again.citations, again.sentences) == (
        ANSWER.text,
        ANSWER.citations,
        ANSWER.sentences,
    )
    assert (again.notice, again.backend, again.standalone_question, again.covered) == (
        ANSWER.notice,
        "local",
        ANSWER.standalone_question,
        True,
    )
    assert turn.unsupported == ("He spoke in Paris.",)


def test_conversations_survive_a_new_store_on_the_same_file(
    store: ConversationStore, tmp_path: Path
) -> None:
    first = store.create("", "Who is Wang Lei?")
    assert store.add_turn("", first, saved_turn("Who is Wang Lei?", ANSWER))
    assert store.add_turn("", first, saved_turn("Banana bread?", NOT))
    second = store.create("", "Who won Super Bowl 50?")
    restarted = ConversationStore(store.path)  # as after a restart
    listed = restarted.list("")
    assert [(c.id, c.title, c.turns) for c in listed] == [
        (second, "Who won Super Bowl 50?", 0),
        (first, "Who is Wang Lei?", 2),
    ]
    loaded = restarted.load("", first)
    assert loaded is not None
    assert [t.question for t in loaded.turns] == ["Who is Wang Lei?", "Banana bread?"]
    assert loaded.turns[0].citations == (CITATION,)
    assert loaded.turns[1].covered is False
    assert loaded.turns[1].answer().refused == "gate"
    assert restarted.delete("", first)
    assert not restarted.delete("", first)
    assert restarted.load("", first) is None
    assert not restarted.add_turn("", first, saved_turn("q", NOT))  # deleted meanwhile
    assert [c.id for c in restarted.list("")] == [second]


def test_each_login_sees_only_its_own(store: ConversationStore) -> None:
    mine = store.create("reader", "Who is Wang Lei?")
    store.add_turn("reader", mine, saved_turn("Who is Wang Lei?", ANSWER))
    assert store.list("other") == []
    assert store.list("") == []
    assert store.load("other", mine) is None
    assert not store.add_turn("other", mine, saved_turn("q", NOT))
    assert not store.delete("other", mine)
    assert [c.id for c in store.list("reader")] == [mine]


def test_old_conversations_and_turns_are_forgotten_past_the_limits(
    store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saved, "MAX_CONVERSATIONS", 3)
    monkeypatch.setattr(saved, "MAX_SAVED_TURNS", 2)
    ids = [store.create("", f"Question {n}") for n in range(5)]
    assert [c.id for c in store.list("")] == ids[:1:-1]  # the three newest
    for n in range(4):
        store.add_turn(
            "", ids[-1], saved_turn(f"Q{n}", NOT, asked_at=f"2030-01-0{n + 1}T00:00:00Z")
        )
    loaded = store.load("", ids[-1])
    assert loaded is not None
    assert [t.question for t in loaded.turns] == ["Q2", "Q3"]


def test_a_damaged_or_unwritable_file_is_a_readable_error(tmp_path: Path) -> None:
    damaged = tmp_path / "conversations.sqlite3"
    damaged.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConversationStoreError, match="cannot be read or written"):
        ConversationStore(damaged).list("")
    blocked = tmp_path / "file"
    blocked.write_text("x", encoding="utf-8")
    with pytest.raises(ConversationStoreError, match="CITEQA_CONVERSATIONS_FILE"):
        ConversationStore(blocked / "sub" / "conversations.sqlite3").create("", "q")


def test_markdown_export_has_each_answer_and_its_sources(store: ConversationStore) -> None:
    conversation_id = store.create("", "Who is Wang Lei?")
    store.add_turn("", conversation_id, saved_turn("Who is Wang Lei?", ANSWER))
    store.add_turn("", conversation_id, saved_turn("Banana bread?", NOT))
    conversation = store.load("", conversation_id)
    assert conversation is not None
    text = export_markdown(conversation)
    assert text.startswith("# Who is Wang Lei?\n\nSaved from citeqa; started ")
    assert "\n## 1. Who is Wang Lei?\n\n" + ANSWER.text + "\n" in text
    assert "*Note: A \\<b\\>notice\\</b\\>.*" in text
    assert "*Unsupported by the articles:* He spoke in Paris." in text
    assert (
        "Sources:\n\n- [1] China offers opportunities for EU's digital development, says "
        "diplomat (Xinhua, 2024-03-19) <https://english.news.cn/20240319/x.html>\n"
        "  > Wang Lei, coordinator for cyber and digital affairs, made the remarks in Brussels.\n"
    ) in text
    assert "\n## 2. Banana bread?\n\nThe articles don't cover this.\n" in text
    assert export_name(conversation, ".md").startswith("citeqa-who-is-wang-lei-")


def test_json_export_has_each_answer_and_its_sources(store: ConversationStore) -> None:
    conversation_id = store.create("", "Who is Wang Lei?")
    store.add_turn("", conversation_id, saved_turn("Who is Wang Lei?", ANSWER))
    conversation = store.load("", conversation_id)
    assert conversation is not None
    document = json.loads(export_json(conversation))
    assert document["format"] == "citeqa-conversation"
    (turn,) = document["turns"]
    assert turn["question"] == "Who is Wang Lei?"
    assert turn["answer"] == ANSWER.text
    assert turn["unsupported"] == ["He spoke in Paris."]
    (cited,) = turn["citations"]
    assert (cited["title"], cited["outlet"], cited["date"]) == (
        CITATION.title,
        "Xinhua",
        "2024-03-19",
    )
    assert cited["supporting_text"] == [PASSAGE[SPAN[0] : SPAN[1]]]


def test_titles_and_where_the_file_lives(tmp_path: Path) -> None:
    assert title_of("  Who   is\nWang Lei?  ") == "Who is Wang Lei?"
    long = title_of("word " * 40)
    assert len(long) <= saved.MAX_TITLE_CHARS
    assert long.endswith("…")
    assert title_of("   ") == "Untitled"
    assert conversations_path(tmp_path) == tmp_path / "conversations.sqlite3"
    assert conversations_path(tmp_path, tmp_path / "x.db") == tmp_path / "x.db"

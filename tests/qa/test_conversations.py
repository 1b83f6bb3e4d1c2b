"""The hand-written conversation set and follow-up recall, on the real sample index."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from qa.chain import build_retriever
from qa.eval.__main__ import main
from qa.eval.conversations import (
    Conversation,
    follow_up_recall,
    format_follow_up,
    gold_reply,
    load_conversations,
)
from qa.retrieval import PassageRetriever
from qa.rewrite import rewrite_question
from tests.conftest import ROOT, SAMPLE_ARTICLES, make_settings

CONVERSATIONS = ROOT / "tests" / "fixtures" / "conversations.jsonl"
ARTICLES = SAMPLE_ARTICLES / "squad-sample.jsonl"
QUESTIONS = ROOT / "tests" / "fixtures" / "squad-sample-questions.jsonl"
# Words by which a follow-up points back at an earlier turn.
POINTERS = frozenset(
    {"it", "its", "he", "him", "his", "she", "her", "they", "them", "their", "there", "that"}
    | {"this", "those", "these", "then", "one", "too"}
)
GOOD_LINE = json.dumps(
    {
        "id": "c1",
        "article_ids": ["a"],
        "turns": [
            {"question": "Who?", "answers": ["x"], "article_ids": ["a"], "standalone": "Who?"}
        ],
    }
)


def bundled_texts() -> dict[str, str]:
    lines = ARTICLES.read_text(encoding="utf-8").splitlines()
    return {record["id"]: record["text"] for record in map(json.loads, lines)}


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    return load_conversations(CONVERSATIONS)


@pytest.fixture(scope="module")
def bundled(conversations: list[Conversation]) -> list[Conversation]:
    """The conversations whose articles are all in the bundled sample corpus."""
    texts = bundled_texts()
    return [c for c in conversations if set(c.article_ids) <= texts.keys()]


@pytest.fixture(scope="module")
def hybrid(sample_index: Path) -> PassageRetriever:
    return build_retriever(make_settings(sample_index, retriever="hybrid"))


def test_fixture_has_enough_conversations_over_enough_articles(
    conversations: list[Conversation],
) -> None:
    assert len(conversations) >= 24
    assert len({a for c in conversations for a in c.article_ids}) >= 12
    assert len({c.id for c in conversations}) == len(conversations)
    for conversation in conversations:
        assert 2 <= len(conversation.turns) <= 4, conversation.id
        for turn in conversation.turns:
            assert turn.answers, conversation.id
            assert set(turn.article_ids) <= set(conversation.article_ids), conversation.id


def test_answers_are_verbatim_in_the_bundled_articles(bundled: list[Conversation]) -> None:
    texts = bundled_texts()
    assert len(bundled) >= 10  # the check below covers a real share of the set
    for conversation in bundled:
        for turn in conversation.turns:
            gold_texts = [texts[a] for a in turn.article_ids]
            for answer in turn.answers:
                assert any(answer in text for text in gold_texts), (conversation.id, answer)


def test_first_turns_stand_alone_and_follow_ups_do_not(
    conversations: list[Conversation],
) -> None:
    for conversation in conversations:
        first, *follow_ups = conversation.turns
        assert first.standalone == first.question, conversation.id
        for turn in follow_ups:
            words = [w.lower() for w in re.findall(r"[\w'\u2019-]+", turn.question)]
            assert POINTERS & set(words) or len(words) <= 6, turn.question
            assert turn.standalone != turn.question, turn.question


def test_follow_up_recall_on_the_sample_index(
    hybrid: PassageRetriever, bundled: list[Conversation]
) -> None:
    by_rules = follow_up_recall(hybrid, bundled, lambda q, h: rewrite_question(q, h, None))
    follow_up_count = sum(len(c.turns) - 1 for c in bundled)
    assert by_rules["k"] == 5
    assert by_rules["conversation_count"] == len(bundled)
    assert by_rules["follow_up_count"] == len(by_rules["turns"]) == follow_up_count
    recall = by_rules["recall"]
    assert set(recall) == {"first_turns", "raw", "rewritten", "standalone"}
    assert all(0.0 <= value <= 1.0 for value in recall.values())
    assert recall["standalone"] >= recall["raw"]
    assert recall["first_turns"] >= 0.9  # written while reading the article
    assert recall["standalone"] >= 0.9  # the gold rewrites find their article too
    first_turn = by_rules["turns"][0]
    assert first_turn["conversation"] == bundled[0].id
    assert first_turn["turn"] == 2
    assert first_turn["rewritten"] == rewrite_question(
        bundled[0].turns[1].question,
        [(bundled[0].turns[0].question, gold_reply(bundled[0].turns[0]))],
        None,
    )
    table = format_follow_up({"rules": by_rules})
    assert table.splitlines()[0].split() == [
        "rewrite",
        "first",
        "turns",
        "raw",
        "rewritten",
        "standalone",
        "follow-ups",
    ]
    assert table.splitlines()[1].split()[-1] == str(follow_up_count)


def test_rewrite_sees_the_replayed_history_and_is_what_is_scored(
    hybrid: PassageRetriever, bundled: list[Conversation]
) -> None:
    calls: list[tuple[str, list[tuple[str, str]]]] = []
    standalones = iter([t.standalone for c in bundled[:2] for t in c.turns[1:]])

    def gold(question: str, history: Sequence[tuple[str, str]]) -> str:
        calls.append((question, list(history)))
        return next(standalones)

    result = follow_up_recall(hybrid, bundled[:2], gold)
    first = bundled[0].turns
    assert calls[0] == (first[1].question, [(first[0].question, f"{first[0].answers[0]} [1].")])
    assert len(calls[1][1]) == 2  # the second follow-up sees both earlier turns
    assert result["recall"]["rewritten"] == result["recall"]["standalone"]
    unchanged = follow_up_recall(hybrid, bundled[:2], lambda q, h: q)
    assert unchanged["recall"]["rewritten"] == unchanged["recall"]["raw"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD_LINE, "", "{not json"], r":3: not a conversation record"),
        ([GOOD_LINE, json.dumps({"id": "c2", "article_ids": ["a"], "turns": []})], r":2: "),
        ([GOOD_LINE, GOOD_LINE.replace('"answers": ["x"]', '"answers": []')], r":2: "),
        ([GOOD_LINE.replace('"standalone": "Who?"', '"rewrite": "Who?"')], r":1: "),
        ([GOOD_LINE, GOOD_LINE], r":2: repeated id 'c1'"),
        (["", "  "], r"No conversations in"),
    ],
)
def test_bad_lines_are_value_errors_with_the_line_number(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_conversations(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Cannot read the conversations file"):
        load_conversations(tmp_path / "none.jsonl")


def test_eval_cli_reports_follow_up_recall(
    tmp_path: Path,
    eval_cache: Path,
    bundled: list[Conversation],
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = CONVERSATIONS.read_text(encoding="utf-8").splitlines()
    subset = tmp_path / "conversations.jsonl"
    subset.write_text("\n".join([lines[0], lines[-1]]) + "\n", encoding="utf-8")
    args = ["--articles", str(ARTICLES), "--questions", str(QUESTIONS), "--limit", "1"]
    args += ["--retriever", "hybrid", "--quiet", "--cache-dir", str(eval_cache)]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n[]\n", encoding="utf-8")
    assert main([*args, "--conversations", str(bad)]) == 1
    assert f"Error: {bad}:2: not a conversation record" in capsys.readouterr().err

    # Only the first line is about a bundled article; the last one's article is not indexed.
    assert json.loads(lines[0])["id"] == bundled[0].id
    assert json.loads(lines[-1])["article_ids"][0] not in bundled_texts()
    assert main([*args, "--conversations", str(subset), "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "Follow-up turns (hybrid retrieval), article recall@5:" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    follow_ups = report["conversations"]
    assert follow_ups["file"] == str(subset)
    assert follow_ups["retriever"] == "hybrid"
    assert set(follow_ups["rewrites"]) == {"rules"}  # no model without --answers
    rules = follow_ups["rewrites"]["rules"]
    assert rules["conversation_count"] == 2
    assert (
        rules["follow_up_count"]
        == len(bundled[0].turns) - 1 + len(json.loads(lines[-1])["turns"]) - 1
    )
    # The unindexed article is never found, whatever the query.
    unindexed = [t for t in rules["turns"] if t["conversation"] == json.loads(lines[-1])["id"]]
    assert unindexed
    assert all(t["hits"] == {"raw": 0.0, "rewritten": 0.0, "standalone": 0.0} for t in unindexed)

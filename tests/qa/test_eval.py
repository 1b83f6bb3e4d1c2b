"""The evaluation harness end to end on a small fixture, with the real index and chain code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.types import Chunk
from qa.eval.__main__ import main
from qa.eval.data import EvalDataError, EvalQuestion, choose_subset, load_questions
from qa.eval.runner import (
    WEEK_WORDS,
    QuestionResult,
    answer_metrics,
    choose_hidden,
    open_metrics,
    time_metrics,
)
from qa.types import NOT_COVERED, Answer, CheckedSentence, Citation, RetrievedChunk
from tests.conftest import ROOT, SAMPLE_ARTICLES

QUESTIONS = ROOT / "tests" / "fixtures" / "squad-sample-questions.jsonl"
ARTICLES = SAMPLE_ARTICLES / "squad-sample.jsonl"


@pytest.mark.slow  # indexes the fixture and runs three retrievers
def test_retrieval_report_on_the_fixture(
    tmp_path: Path, eval_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_dir = tmp_path / "report"
    args = ["--articles", str(ARTICLES), "--questions", str(QUESTIONS)]
    args += ["--retriever", "dense,bm25,hybrid", "--unanswerable", "0.2", "--quiet"]
    args += ["--cache-dir", str(eval_cache), "--report", str(report_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "10 questions (2 with their articles hidden), 10 articles indexed" in out
    assert out.splitlines()[1].split()[:3] == ["retriever", "R@1", "R@5"]
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert set(report["retrievers"]) == {"dense", "bm25", "hybrid"}
    for metrics in report["retrievers"].values():
        retrieval = metrics["retrieval"]
        assert 0.0 <= retrieval["recall@1"] <= retrieval["recall@5"] <= retrieval["recall@10"]
        assert retrieval["recall@10"] >= 0.75  # questions written while reading the article
        assert retrieval["passage_hit@5"] is not None
        assert set(metrics["latency"]["stages"]) == {"embed", "search"}
        assert (
            metrics["latency"]["retrieval"]["p95_ms"] >= metrics["latency"]["retrieval"]["p50_ms"]
        )
        assert "retrieval_filtered" in metrics["latency"]
    assert report["answers"] is None
    assert (report_dir / "recall_at_k.png").stat().st_size > 1000
    assert (report_dir / "latency.png").stat().st_size > 1000

    # The index is keyed by content: a second run reuses it.
    indexes = {p: p.stat().st_mtime_ns for p in eval_cache.iterdir()}
    again = ["--articles", str(ARTICLES), "--questions", str(QUESTIONS), "--limit", "2"]
    again += ["--retriever", "hybrid", "--quiet", "--cache-dir", str(eval_cache)]
    assert main(again) == 0
    assert "10 articles indexed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in eval_cache.iterdir()} == indexes


@pytest.mark.model
def test_answers_and_abstention_with_the_small_model(
    tmp_path: Path,
    eval_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CITEQA_LLM_MODEL", "smollm2-135m")
    monkeypatch.setenv("CITEQA_MAX_ANSWER_TOKENS", "48")
    args = ["--articles", str(ARTICLES), "--questions", str(QUESTIONS), "--limit", "4"]
    args += ["--answers", "--unanswerable", "0.5", "--quiet", "--retriever", "hybrid"]
    args += ["--cache-dir", str(eval_cache), "--report", str(tmp_path / "r")]
    assert main(args) == 0
    answers = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))["answers"]
    for key in ("exact_match", "f1", "answer_accuracy", "abstention", "false_abstention"):
        assert answers[key] is None or 0.0 <= answers[key] <= 1.0
    assert answers["abstention"] is not None
    assert "Answers (hybrid retrieval, smollm2-135m):" in capsys.readouterr().out


def test_unknown_retriever_and_bad_files_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--articles", str(ARTICLES), "--questions", str(QUESTIONS), "--retriever", "magic"])
    assert "unknown retriever 'magic'" in capsys.readouterr().err
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    assert main(["--articles", str(ARTICLES), "--questions", str(bad), "--quiet"]) == 1
    assert "not a question record" in capsys.readouterr().err


def test_load_questions_reads_spans_and_limits() -> None:
    questions = load_questions(QUESTIONS, limit=3)
    assert len(questions) == 3
    assert questions[0].answer_spans
    assert questions[0].answer_spans[0].article_id == questions[0].article_ids[0]
    with pytest.raises(EvalDataError, match="Cannot read"):
        load_questions(Path("/nonexistent.jsonl"))


def test_hidden_sample_is_seeded() -> None:
    questions = load_questions(QUESTIONS)
    first = choose_hidden(questions, 0.3, seed=1)
    assert len(first) == 3
    assert first == choose_hidden(questions, 0.3, seed=1)
    assert choose_hidden(questions, 0.0, seed=1) == set()


def scored_result(number: int, passage: str, reply: str, hidden: bool = True) -> QuestionResult:
    """A scored question (by default one whose own article was hidden), answered `reply` from
    one passage of another article."""
    question = EvalQuestion(f"q{number}", "Who bought Spirit Airlines?", ("JetBlue",), ("gold",))
    chunk = Chunk(f"c{number}", "other", 0, passage, 0, len(passage), "Another outlet")
    hit = RetrievedChunk(chunk=chunk, score=1.0, rank=1, similarity=0.5)
    answer = Answer(
        question=question.question,
        text=reply,
        citations=(),
        retrieved=(hit,),
        covered=reply != NOT_COVERED,
        refused="model" if reply == NOT_COVERED else None,
    )
    return QuestionResult(question, hidden, (hit,), {}, 0.5, answer)


def test_hidden_questions_answered_by_another_article_are_counted_apart() -> None:
    results = [
        # the answer is in another outlet's article: answering it right is not a failure
        scored_result(1, "JetBlue agreed to buy Spirit Airlines.", "JetBlue bought it [1]."),
        scored_result(2, "JetBlue agreed to buy Spirit Airlines.", NOT_COVERED),
        # nothing retrieved holds the answer: only "not covered" is right
        scored_result(3, "Frontier talked to Spirit Airlines.", NOT_COVERED),
        scored_result(4, "Frontier talked to Spirit Airlines.", "Frontier bought it [1]."),
        scored_result(5, "JetBluejay is a bird.", NOT_COVERED),  # whole words only
        # answerable ones: right, wrong, refused
        scored_result(6, "JetBlue agreed to buy Spirit Airlines.", "JetBlue [1].", hidden=False),
        scored_result(7, "JetBlue agreed to buy Spirit Airlines.", "Delta [1].", hidden=False),
        scored_result(8, "JetBlue agreed to buy Spirit Airlines.", NOT_COVERED, hidden=False),
    ]
    metrics = answer_metrics(results)
    assert metrics["abstention"] == 3 / 5
    assert metrics["hidden_answer_in_passages"] == 2 / 5
    assert metrics["abstention_answer_absent"] == 2 / 3
    assert metrics["accuracy_answer_elsewhere"] == 1 / 2
    assert metrics["answer_accuracy"] == 1 / 3
    assert metrics["false_abstention"] == 1 / 3
    assert metrics["false_abstention_model"] == 1 / 3  # which step refused
    assert metrics["false_abstention_gate"] == metrics["false_abstention_check"] == 0
    assert metrics["wrong_answers"] == 1 / 3


def dated_result(
    number: int,
    reply: str,
    cited: tuple[str | None, ...],
    relative: bool = True,
    when: str = "this week",
) -> QuestionResult:
    """A question asked on 2024-03-20 (naming a relative time `when` if `relative`), answered
    `reply` citing passages published on the days `cited`."""
    question = EvalQuestion(
        f"d{number}",
        f"Which airline had a door blow out {when}?",
        ("Alaska Airlines",),
        ("gold",),
        question_date="2024-03-20",
        tags=(("relative_time", "true" if relative else "false"),),
    )
    hits = tuple(
        RetrievedChunk(Chunk(f"c{n}", "gold", 0, "t", 0, 1, "T", published=day), 1.0, n, 0.5)
        for n, day in enumerate(cited, start=1)
    )
    citations = tuple(
        Citation(n, "gold", "T", None, None, day, "t", 0, 1, 1.0)
        for n, day in enumerate(cited, start=1)
    )
    answer = Answer(question.question, reply, citations, hits, covered=reply != NOT_COVERED)
    return QuestionResult(question, False, hits, {}, 0.5, answer)


def test_time_metrics_count_recent_citations_of_relative_questions() -> None:
    results = [
        dated_result(1, "Alaska Airlines [1].", ("2024-03-19",)),
        dated_result(2, "Alaska Airlines [1][2].", ("2024-03-19", "2024-01-05")),  # one old
        dated_result(3, "United [1].", ("2024-03-13",)),  # 7 days before: recent, but wrong
        dated_result(4, NOT_COVERED, ()),
        dated_result(5, "Alaska Airlines [1].", ("2023-01-01",), relative=False, when="then"),
        dated_result(6, "Alaska Airlines [1].", ("2024-03-01",), when="recently"),  # not a week
    ]
    metrics = time_metrics(results)
    assert metrics["relative_questions"] == 5
    assert metrics["relative_accuracy"] == 3 / 5
    assert metrics["relative_answers_citing"] == 4
    assert metrics["relative_answers_citing_last_7_days"] == 2 / 4
    # Only the questions that say "this week" or "latest"
    assert metrics["week_answers_citing"] == 3
    assert metrics["week_answers_citing_last_7_days"] == 2 / 3


@pytest.mark.parametrize(
    ("question", "week"),
    [
        ("Which airline had a door blow out this week?", True),
        ("What is the latest on the strike?", True),
        ("Who won This  Weekend's final?", True),
        ("Which band released a weekly podcast recently?", False),
        ("Who is the most talented singer this month?", False),
    ],
)
def test_week_words_are_this_week_and_latest(question: str, week: bool) -> None:
    assert bool(WEEK_WORDS.search(question)) is week


def test_open_metrics_score_key_facts_and_backed_sentences() -> None:
    question = EvalQuestion(
        "o1",
        "What happened?",
        (),
        ("gold",),
        key_facts=(("Brussels",), ("ninth meeting", "9th meeting"), ("Le Blanc",)),
    )
    sentences = (
        CheckedSentence("They met in Brussels [1].", (1,), True, 0.8),
        CheckedSentence("It was the 9th meeting.", (), False, 0.2),
    )
    answer = Answer(
        "What happened?",
        "They met in Brussels [1]. It was the 9th meeting.",
        (),
        (),
        sentences=sentences,
    )
    metrics = open_metrics([QuestionResult(question, False, (), {}, 0.5, answer)])
    assert metrics["open_questions"] == 1
    assert metrics["key_fact_recall"] == 2 / 3
    assert metrics["backed_sentences"] == 1 / 2


def test_subsets_and_dates_are_read_from_the_records(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    records = [
        {
            "id": "a",
            "question": "Q?",
            "answers": ["x"],
            "article_ids": ["g"],
            "question_date": "2024-01-05",
            "answerable_strict": True,
            "relative_time": False,
        },
        {
            "id": "b",
            "question": "Q?",
            "answers": ["x"],
            "article_ids": ["g"],
            "question_date": "2024-01-12",
            "answerable_strict": False,
            "relative_time": True,
        },
        {
            "id": "c",
            "question": "Open?",
            "article_ids": ["g"],
            "as_of": "2024-03-20",
            "corpus": "sample",
            "key_facts": [{"fact": "f", "any_of": ["x", "y"]}],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    questions = load_questions(path)
    assert [q.id for q in choose_subset(questions, "answerable_strict")] == ["a"]
    assert [q.id for q in choose_subset(questions, "relative_time=true")] == ["b"]
    assert [q.id for q in choose_subset(questions, "corpus=sample")] == ["c"]
    assert questions[2].question_date == "2024-03-20"
    assert questions[2].key_facts == (("x", "y"),)
    with pytest.raises(EvalDataError, match="No question has corpus = other"):
        choose_subset(questions, "corpus=other")

"""The answering chain with real MiniLM, real Chroma and real llama.cpp generation (SmolLM2)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from index.errors import IndexMismatchError, IndexNotBuiltError
from qa import NOT_COVERED, Answer, QAChain, build_chain
from qa.chain import build_retriever, gather_evidence
from qa.config import Settings
from qa.errors import QuestionError
from qa.prompt import build_messages, passage_heading
from qa.retrieval import PassageRetriever
from tests.conftest import XINHUA_TITLE, make_settings
from tests.support.factories import RecordingChatModel


@pytest.fixture
def recording_chain(smol_chain: QAChain) -> QAChain:
    recorder = RecordingChatModel(inner=smol_chain.llm)
    return QAChain(smol_chain.retriever, recorder, smol_chain.settings)


@pytest.fixture(scope="module")
def fake_chain(smol_settings: Settings) -> QAChain:
    """The real retriever with LangChain's fake chat model, recording what it is sent: for the
    checks made before and around generation, where no real model's text is needed."""
    fake = FakeListChatModel(responses=["Wang Lei is a Chinese diplomat [1]."])
    return QAChain(build_retriever(smol_settings), RecordingChatModel(inner=fake), smol_settings)


@pytest.fixture
def fake_recording_chain(fake_chain: QAChain) -> QAChain:
    """`fake_chain` with a fresh record of calls."""
    assert isinstance(fake_chain.llm, RecordingChatModel)
    recorder = RecordingChatModel(inner=fake_chain.llm.inner)
    return QAChain(fake_chain.retriever, recorder, fake_chain.settings)


def calls_of(chain: QAChain) -> list[list[BaseMessage]]:
    assert isinstance(chain.llm, RecordingChatModel)
    return chain.llm.calls


def test_answer_retrieves_the_article_and_cites_only_real_passages(
    recording_chain: QAChain,
) -> None:
    answer = recording_chain.invoke("Where did Wang Lei make the remarks?")
    # (To "Who is Wang Lei?" or "What does Wang Lei coordinate?" SmolLM2 answers from another
    # article, "The IPCC Chair is Hoesung Lee.": the check refuses an answer about something the
    # question does not name.)
    assert isinstance(answer, Answer)
    assert answer.covered
    assert answer.retrieved[0].chunk.title == XINHUA_TITLE
    assert [r.rank for r in answer.retrieved] == [1, 2, 3, 4]
    assert answer.text.strip()
    for citation in answer.citations:
        assert 1 <= citation.marker <= len(answer.retrieved)
        assert citation.passage == answer.retrieved[citation.marker - 1].chunk.text
    assert len(calls_of(recording_chain)) == 1
    prompt = calls_of(recording_chain)[0][-1].content
    assert "[1] " + XINHUA_TITLE + " (2024-03-19)\n" in prompt
    assert answer.seconds_to_first_token is not None
    assert answer.seconds_total >= answer.seconds_to_first_token


def test_stream_yields_text_then_the_answer(smol_chain: QAChain) -> None:
    events = list(smol_chain.events("Who won Super Bowl 50?"))
    *pieces, final = events
    assert isinstance(final, Answer)
    assert pieces
    assert all(isinstance(p, str) for p in pieces)
    assert "Super Bowl 50" in {r.chunk.title for r in final.retrieved}


def test_unrelated_question_is_not_covered_without_calling_the_model(
    fake_recording_chain: QAChain,
) -> None:
    answer = fake_recording_chain.invoke("What is the best recipe for banana bread?")
    assert answer.text == NOT_COVERED
    assert not answer.covered
    assert answer.refused == "gate"
    assert answer.citations == ()
    assert calls_of(fake_recording_chain) == []


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_gets_a_friendly_message_and_no_retrieval(
    fake_recording_chain: QAChain, monkeypatch: pytest.MonkeyPatch, question: str
) -> None:
    searched: list[str] = []
    retriever = type(fake_recording_chain.retriever)
    real_search = retriever.search

    def spy(self: PassageRetriever, question: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(question)
        return real_search(self, question, *args, **kwargs)

    # The chain retrieves through `search`, its one way to retrieve.
    monkeypatch.setattr(retriever, "search", spy)
    with pytest.raises(QuestionError, match="Please type a question"):
        fake_recording_chain.invoke(question)
    assert searched == []
    assert calls_of(fake_recording_chain) == []


def test_huge_question_is_refused(fake_chain: QAChain) -> None:
    with pytest.raises(QuestionError, match="limit is 2000"):
        fake_chain.invoke("why " * 1000)


def test_chain_and_retriever_are_langchain_runnables(fake_chain: QAChain) -> None:
    assert isinstance(fake_chain, Runnable)
    documents = fake_chain.retriever.invoke("China-EU Cyber Taskforce")
    assert documents[0].metadata["title"] == XINHUA_TITLE
    assert documents[0].metadata["rank"] == 1
    assert {"article_id", "start", "end", "score", "source"} <= set(documents[0].metadata)


def test_history_goes_to_the_model_but_refusals_do_not(fake_chain: QAChain) -> None:
    passages = fake_chain.retriever.search("Who is Wang Lei?").passages
    evidence = gather_evidence(fake_chain.retriever, "Where did Wang Lei speak?", passages)
    history = [
        ("What is the weather?", NOT_COVERED),
        ("Who is Wang Lei?", "A Chinese diplomat [1]."),
    ]
    messages = build_messages(
        "Where did he speak?", evidence, history, fake_chain.retriever.embedder.count_tokens, 160
    )
    contents = [m.content for m in messages]
    assert [m.type for m in messages] == ["system", "human", "ai", "human", "ai", "human"]
    assert contents[3] == "Who is Wang Lei?"
    assert contents[4] == "A Chinese diplomat."
    assert "What is the weather?" not in " ".join(str(c) for c in contents)


def test_the_rules_and_example_are_a_fixed_prefix_the_model_can_cache(fake_chain: QAChain) -> None:
    count = fake_chain.retriever.embedder.count_tokens
    prompts = []
    for question in ("Who is Wang Lei?", "Who won Super Bowl 50?"):
        evidence = gather_evidence(
            fake_chain.retriever, question, fake_chain.retriever.search(question).passages
        )
        prompts.append(build_messages(question, evidence, (), count, 160))
    first, second = prompts
    assert [m.content for m in first[:3]] == [m.content for m in second[:3]]
    assert [m.type for m in first[:3]] == ["system", "human", "ai"]
    assert "[2]" in str(first[2].content)  # the example answer cites like a real one
    assert first[3].content != second[3].content


def test_prompt_holds_only_the_best_sentences_within_the_budget(fake_chain: QAChain) -> None:
    passages = fake_chain.retriever.search("Who is Wang Lei?").passages
    evidence = gather_evidence(fake_chain.retriever, "Who is Wang Lei?", passages)
    count = fake_chain.retriever.embedder.count_tokens
    small = build_messages("Who is Wang Lei?", evidence, (), count, 40)[-1].content
    large = build_messages("Who is Wang Lei?", evidence, (), count, 2000)[-1].content
    assert "Wang Lei, coordinator for cyber and digital affairs" in str(small)
    assert len(str(small)) < len(str(large))
    whole = sum(count(p.chunk.text) for p in passages)
    assert count(str(small)) < whole / 2


def test_a_factoid_prompt_over_news_puts_the_best_passage_next_to_the_question(
    fake_chain: QAChain,
) -> None:
    count = fake_chain.retriever.embedder.count_tokens

    def numbers_in_order(question: str, shape: str) -> list[int]:
        passages = fake_chain.retriever.search(question).passages
        evidence = gather_evidence(fake_chain.retriever, question, passages)
        text = str(build_messages(question, evidence, (), count, 2000, shape)[-1].content)
        return [int(n) for n in re.findall(r"^\[(\d+)\] ", text, re.MULTILINE)]

    news = "Which country offers the EU opportunities in digital development?"
    factoid = numbers_in_order(news, "factoid")
    assert len(factoid) > 1
    assert factoid == sorted(factoid, reverse=True)  # [1], the best, comes last
    assert numbers_in_order(news, "open") == sorted(factoid)  # an open answer's order is kept
    undated = numbers_in_order("Who won Super Bowl 50?", "factoid")  # Wikipedia: no dates
    assert len(undated) > 1
    assert undated == sorted(undated)


def test_a_question_asking_for_a_kind_of_thing_says_so_to_the_model(fake_chain: QAChain) -> None:
    count = fake_chain.retriever.embedder.count_tokens

    def last_message(question: str) -> str:
        passages = fake_chain.retriever.search(question).passages
        evidence = gather_evidence(fake_chain.retriever, question, passages)
        return str(build_messages(question, evidence, (), count, 160)[-1].content)

    asked = last_message("Which country offers the EU opportunities in digital development?")
    assert "The question asks for a country: name the country itself" in asked
    assert asked.index("asks for a country") < asked.index("Question: Which country")
    assert "The question asks for" not in last_message("Who is Wang Lei?")


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        ("2024-03-19", "T (2024-03-19)"),
        ("2024-03-19T08:00:00+00:00", "T (2024-03-19)"),
        (None, "T"),
    ],
)
def test_passage_heading_keeps_the_date_and_leaves_out_the_outlet(
    published: str | None, expected: str
) -> None:
    assert passage_heading("T", published) == expected


def test_a_follow_up_is_rewritten_for_retrieval(recording_chain: QAChain) -> None:
    settings = recording_chain.settings.model_copy(update={"rewrite_with_model": False})
    chain = QAChain(recording_chain.retriever, recording_chain.llm, settings)
    history = [("Who is Wang Lei?", "A Chinese diplomat [1].")]
    answer = chain.invoke({"question": "Where did he speak?", "history": history})
    assert answer.standalone_question == "Where did he speak? (Wang Lei Chinese diplomat)"
    assert answer.retrieved[0].chunk.title == XINHUA_TITLE


def test_an_earlier_refusal_does_not_stop_a_later_answer(recording_chain: QAChain) -> None:
    history = [("What is the best recipe for banana bread?", NOT_COVERED)] * 3
    answer = recording_chain.invoke({"question": "Who is Wang Lei?", "history": history})
    assert answer.retrieved[0].chunk.title == XINHUA_TITLE
    assert answer.standalone_question is None
    (messages,) = calls_of(recording_chain)
    assert "banana" not in " ".join(str(m.content) for m in messages)


def test_build_chain_without_index_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(IndexNotBuiltError, match="python -m index rebuild"):
        build_chain(make_settings(tmp_path / "none", llm_model="smollm2-135m"))


def test_build_chain_refuses_an_index_built_differently(smol_settings: Settings) -> None:
    other = smol_settings.model_copy(update={"chunk_overlap_tokens": 10})
    with pytest.raises(IndexMismatchError, match="chunk_overlap_tokens"):
        build_chain(other)


def test_answer_objects_are_frozen(smol_chain: QAChain) -> None:
    answer = smol_chain.invoke("Who won Super Bowl 50?")
    with pytest.raises(AttributeError):
        answer.text = "changed"  # type: ignore[misc]
    assert replace(answer, text="copy").text == "copy"

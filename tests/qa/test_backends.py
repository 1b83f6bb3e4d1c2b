"""The extractive backend, and the extractive fallback when the model fails, is too slow or only
repeats the question: real embedding model, real Chroma, real llama.cpp, a real (closed) loopback
port, and LangChain's fake chat model where a real one cannot be made to misbehave on demand."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from qa import NOT_COVERED, QAChain, build_chain, refusal_reason
from qa.types import REFUSALS
from tests.conftest import XINHUA_TITLE, make_settings
from tests.support.servers import closed_port


def test_extractive_backend_quotes_the_article_without_a_model(sample_index: Path) -> None:
    chain = build_chain(make_settings(sample_index, llm_backend="extractive"))
    assert chain.llm is None
    answer = chain.invoke("Who is Wang Lei?")
    assert answer.covered
    assert answer.backend == "extractive"
    assert answer.notice is None
    assert answer.text.startswith('"Wang Lei, coordinator for cyber and digital affairs')
    (citation,) = answer.citations
    assert citation.title == XINHUA_TITLE
    ((start, end),) = citation.spans
    assert citation.passage[start:end].startswith("Wang Lei, coordinator")
    assert answer.seconds_to_first_token is None


def test_extractive_backend_still_says_not_covered(sample_index: Path) -> None:
    chain = build_chain(make_settings(sample_index, llm_backend="extractive"))
    answer = chain.invoke("What is the best recipe for banana bread?")
    assert not answer.covered
    assert answer.citations == ()


def test_a_server_that_is_down_falls_back_to_extractive_with_a_notice(
    sample_index: Path,
) -> None:
    settings = make_settings(
        sample_index,
        llm_backend="openai",
        openai_base_url=f"http://127.0.0.1:{closed_port()}/v1",
        llm_timeout_s=5,
    )
    answer = build_chain(settings).invoke("Who is Wang Lei?")
    assert answer.covered
    assert answer.backend == "extractive"
    assert answer.notice is not None
    assert "failed" in answer.notice
    assert answer.citations
    assert answer.citations[0].title == XINHUA_TITLE


def test_a_model_past_the_timeout_gives_the_extractive_answer(smol_chain: QAChain) -> None:
    settings = smol_chain.settings.model_copy(update={"llm_timeout_s": 0.001})
    slow = QAChain(smol_chain.retriever, smol_chain.llm, settings)
    events = list(slow.events("Who is Wang Lei?"))
    answer = events[-1]
    assert not isinstance(answer, str)
    assert answer.backend == "extractive"
    assert answer.notice is not None
    assert "longer than 0.001 s" in answer.notice
    assert answer.text.startswith('"Wang Lei')


def scripted_chain(sample_index: Path, reply: str) -> QAChain:
    """The real chain, with LangChain's fake chat model (the same interface) writing `reply`:
    a real model cannot be made to echo the question on demand."""
    chain = build_chain(make_settings(sample_index, llm_backend="extractive"))
    settings = chain.settings.model_copy(update={"llm_backend": "local"})
    return QAChain(chain.retriever, FakeListChatModel(responses=[reply]), settings)


ROLE = "Wang Lei is the coordinator for cyber and digital affairs [1]."


def test_an_answer_that_only_repeats_the_question_gives_the_extractive_answer(
    sample_index: Path,
) -> None:
    # The default model did this to 4 of 250 SQuAD dev questions.
    events = list(
        scripted_chain(sample_index, "Wang Lei is Wang Lei [1].").events("Who is Wang Lei?")
    )
    answer = events[-1]
    assert not isinstance(answer, str)
    assert answer.covered
    assert answer.backend == "extractive"
    assert answer.notice is not None
    assert "only repeated the question" in answer.notice
    assert answer.text.startswith('"Wang Lei, coordinator for cyber and digital affairs')
    assert "".join(e for e in events[:-1] if isinstance(e, str)).startswith("Wang Lei is Wang Lei")


def test_an_answer_that_adds_to_the_question_is_kept(sample_index: Path) -> None:
    answer = scripted_chain(sample_index, ROLE).invoke("Who is Wang Lei?")
    assert answer.notice is None
    assert answer.backend == "local"
    assert answer.text.startswith("Wang Lei is the coordinator")


def test_only_the_last_sentence_of_a_question_counts_as_what_was_asked(
    sample_index: Path,
) -> None:
    # News quiz questions open with context: an answer taken from it is not an echo.
    answer = scripted_chain(sample_index, ROLE).invoke(
        "China named a coordinator for cyber and digital affairs. Who is Wang Lei?"
    )
    assert answer.notice is None
    assert answer.backend == "local"
    assert answer.covered


@pytest.mark.parametrize(
    ("reply", "refused"),
    [
        ("The articles don't cover this.", "model"),
        ("Wang Lei is a famous pianist from Paris [1].", "check"),
    ],
)
def test_a_not_covered_answer_says_which_step_refused_it(
    sample_index: Path, reply: str, refused: str
) -> None:
    answer = scripted_chain(sample_index, reply).invoke("Who is Wang Lei?")
    assert not answer.covered
    assert answer.text == NOT_COVERED
    assert answer.refused == refused
    assert refusal_reason(answer.refused) == REFUSALS[refused]
    gate = scripted_chain(sample_index, reply).invoke("What is the best recipe for banana bread?")
    assert gate.refused == "gate"
    covered = scripted_chain(sample_index, ROLE).invoke("Who is Wang Lei?")
    assert covered.covered
    assert covered.refused is None

"""The answering chain: question -> passages -> prompt -> model -> answer with checked markers.

`QAChain` is a LangChain `Runnable` (`invoke` gives an `Answer`); `events` streams text pieces
and ends with the `Answer`. `build_chain` loads the heavy parts (embedder, index, model) once.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from index.build import fingerprint_for
from index.embeddings import open_embedder
from index.keyword import open_keyword_index
from index.store import open_store
from prompts import render_prompt
from qa.citations import build_citations, clean_markers, format_byline
from qa.config import Settings
from qa.errors import GenerationError, QuestionError
from qa.llm import count_prompt_tokens, open_chat_model
from qa.models import resolve_model_path
from qa.retrieval import PassageRetriever
from qa.types import NOT_COVERED, Answer, RetrievedChunk

History = Sequence[tuple[str, str]]
ChainInput = str | dict[str, Any]


class QAChain(Runnable[ChainInput, Answer]):
    """Answers questions from the index with a chat model; built once, used for many questions."""

    def __init__(self, retriever: PassageRetriever, llm: BaseChatModel, settings: Settings):
        self.retriever = retriever
        self.llm = llm
        self.settings = settings

    def invoke(
        self, input: ChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        """Answer `input`: a question, or a dict with `question` and optionally `history`
        (`[(question, answer), ...]`) and `exclude_articles` (ids to leave out of retrieval)."""
        if isinstance(input, str):
            question, history, exclude = input, (), ()
        else:
            question = str(input["question"])
            history = tuple(input.get("history", ()))
            exclude = tuple(input.get("exclude_articles", ()))
        for event in self.events(question, history, exclude):
            if isinstance(event, Answer):
                return event
        raise GenerationError("The model produced no answer.")  # pragma: no cover

    def events(
        self, question: str, history: History = (), exclude_articles: Collection[str] = ()
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as the model writes them, then the complete `Answer`.

        `exclude_articles` leaves those articles out of retrieval, as if they were not indexed.
        """
        started = time.perf_counter()
        question = check_question(question, self.settings.max_question_chars)
        passages, timings = self.retriever.timed_search(
            question, self.settings.top_k, exclude_articles
        )
        if not covers(passages, self.settings.min_relevance):
            yield NOT_COVERED
            elapsed = time.perf_counter() - started
            yield not_covered_answer(question, passages, elapsed, timings=timings)
            return
        messages = build_messages(question, passages, history, self.settings.history_turns)
        generating = time.perf_counter()
        pieces: list[str] = []
        first: float | None = None
        try:
            for chunk in self.llm.stream(messages):
                piece = chunk.text
                if piece:
                    if first is None:
                        first = time.perf_counter() - started
                    pieces.append(piece)
                    yield piece
        except Exception as e:  # llama.cpp raises plain RuntimeError/ValueError
            raise GenerationError(f"The language model failed while answering: {e}") from e
        timings["generate"] = time.perf_counter() - generating
        answer = finish_answer(question, "".join(pieces), passages, first, started)
        yield replace(
            answer, timings=timings, prompt_tokens=count_prompt_tokens(self.llm, messages)
        )


def finish_answer(
    question: str,
    raw: str,
    passages: Sequence[RetrievedChunk],
    first: float | None,
    started: float,
) -> Answer:
    """The `Answer` for generated text: dangling markers dropped, citations resolved."""
    elapsed = time.perf_counter() - started
    if is_not_covered(raw) or not raw.strip():
        return not_covered_answer(question, passages, elapsed, first)
    text = clean_markers(raw, set(range(1, len(passages) + 1)))
    return Answer(
        question=question,
        text=text,
        citations=build_citations(text, passages),
        retrieved=tuple(passages),
        covered=True,
        seconds_to_first_token=first,
        seconds_total=elapsed,
    )


def not_covered_answer(
    question: str,
    passages: Sequence[RetrievedChunk],
    elapsed: float,
    first: float | None = None,
    timings: dict[str, float] | None = None,
) -> Answer:
    return Answer(
        question=question,
        text=NOT_COVERED,
        citations=(),
        retrieved=tuple(passages),
        covered=False,
        seconds_to_first_token=first,
        seconds_total=elapsed,
        timings=timings or {},
    )


def covers(passages: Sequence[RetrievedChunk], min_relevance: float) -> bool:
    """The relevance gate: some passage is similar enough to the question to try answering."""
    return bool(passages) and max(p.similarity for p in passages) >= min_relevance


def check_question(question: str, max_chars: int) -> str:
    """The question, stripped; `QuestionError` with a friendly message if it cannot be asked."""
    stripped = " ".join(question.split())
    if not stripped:
        raise QuestionError("Please type a question about the articles.")
    if len(stripped) > max_chars:
        raise QuestionError(
            f"The question is {len(stripped)} characters long; the limit is {max_chars}. "
            "Please ask something shorter."
        )
    return stripped


def is_not_covered(text: str) -> bool:
    """True if the model gave the fixed "not covered" reply (allowing quote and case variants)."""
    normal = text.strip().lower().replace("\u2019", "'")
    return normal.startswith(NOT_COVERED.lower().rstrip("."))


def format_passages(passages: Sequence[RetrievedChunk]) -> str:
    """The numbered passages as the model reads them."""
    return "\n\n".join(
        render_prompt(
            "passage",
            number=str(i),
            title=p.chunk.title,
            byline=format_byline(p.chunk.source, p.chunk.published),
            text=p.chunk.text,
        )
        for i, p in enumerate(passages, start=1)
    )


def build_messages(
    question: str, passages: Sequence[RetrievedChunk], history: History, turns: int
) -> list[BaseMessage]:
    """System rules, the last `turns` answered exchanges, then the passages and the question."""
    messages: list[BaseMessage] = [
        SystemMessage(render_prompt("answer_system", not_covered=NOT_COVERED))
    ]
    # Refusals are left out so that an earlier "not covered" does not teach the model to refuse.
    answered = [(q, a) for q, a in history if a.strip() and not is_not_covered(a)]
    for past_question, past_answer in answered[-turns:] if turns else []:
        messages.append(HumanMessage(past_question))
        messages.append(AIMessage(clean_markers(past_answer, set())))
    messages.append(
        HumanMessage(
            render_prompt(
                "answer_user",
                passages=format_passages(passages),
                question=question,
                not_covered=NOT_COVERED,
            )
        )
    )
    return messages


def build_retriever(settings: Settings) -> PassageRetriever:
    """Load the embedding model and open the index, refusing one built with other settings."""
    embedder = open_embedder(settings.embedding_model_path, settings.embed_batch_size)
    store = open_store(settings.index_dir, settings.collection)
    store.check(fingerprint_for(settings, embedder))
    keyword = None
    if settings.retriever != "dense":
        keyword = open_keyword_index(settings.index_dir, settings.collection, store.count())
    return PassageRetriever(
        embedder=embedder,
        store=store,
        keyword=keyword,
        mode=settings.retriever,
        k=settings.top_k,
        max_per_article=settings.max_passages_per_article,
    )


def build_chain(settings: Settings, retriever: PassageRetriever | None = None) -> QAChain:
    """The retriever (built here unless given) and the chat model, loaded once."""
    retriever = retriever or build_retriever(settings)
    llm = open_chat_model(
        resolve_model_path(settings.llm_model, settings.model_cache_dir),
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        max_tokens=settings.max_answer_tokens,
        temperature=settings.temperature,
    )
    return QAChain(retriever, llm, settings)

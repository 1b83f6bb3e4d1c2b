"""The answering chain: question -> passages -> prompt -> model -> answer with checked markers.

`QAChain` is a LangChain `Runnable` (`invoke` gives an `Answer`); `events` streams text pieces
and ends with the `Answer`. `build_chain` loads the heavy parts (embedder, index, model) once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Generator, Iterator, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

from index.embeddings import open_embedder_for
from index.fingerprint import fingerprint_for
from index.reader import open_store
from qa.config import Settings
from qa.errors import GenerationError, ModelFileError, ModelWorkerError, QuestionError
from qa.evidence import Evidence
from qa.extractive import extractive_text
from qa.grounding import check_answer
from qa.llm import check_generation, count_prompt_tokens, open_llm
from qa.prompt import History, answered_turns, build_messages, fixed_messages, is_not_covered
from qa.retrieval import PassageFilter, PassageRetriever
from qa.rewrite import rewrite_question
from qa.text import adds_nothing, sentence_spans
from qa.types import NOT_COVERED, Answer, Generated, RetrievedChunk

log = logging.getLogger(__name__)

ChainInput = str | dict[str, Any]


class QAChain(Runnable[ChainInput, Answer]):
    """Answers questions from the index with a chat model; built once, used for many questions."""

    def __init__(
        self,
        retriever: PassageRetriever,
        llm: BaseChatModel | None,
        settings: Settings,
        model_problem: str | None = None,
    ):
        self.retriever = retriever
        self.llm = llm
        self.settings = settings
        # Why the configured model is not in use (it failed its start-up check), if so: every
        # answer carries it as its notice.
        self.model_problem = model_problem

    def invoke(
        self, input: ChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        """Answer `input`: a question, or a dict with `question` and optionally `history`
        (`[(question, answer), ...]`), `exclude_articles` (ids to leave out of retrieval) and
        `filters` (a `PassageFilter`: outlets, publication dates)."""
        filters: PassageFilter | None = None
        if isinstance(input, str):
            question, history, exclude = input, (), ()
        else:
            question = str(input["question"])
            history = tuple(input.get("history", ()))
            exclude = tuple(input.get("exclude_articles", ()))
            filters = input.get("filters")
        for event in self.events(question, history, exclude, filters):
            if isinstance(event, Answer):
                return event
        raise GenerationError("The model produced no answer.")  # pragma: no cover

    def warm_up(self) -> None:
        """Take the embedding model's working memory for the largest passages now, as a server
        should before its first user (passages are at most `chunk_tokens` word pieces)."""
        self.retriever.embedder.warm_up(self.settings.chunk_tokens)

    def events(
        self,
        question: str,
        history: History = (),
        exclude_articles: Collection[str] = (),
        filters: PassageFilter | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are written, then the checked `Answer`.

        A follow-up is first rewritten into a standalone question for retrieval. Only the
        sentences that answer it are sent to the model. If the model fails or runs past the
        timeout, the extractive answer is given instead, with a notice.
        `exclude_articles` leaves those articles out of retrieval, as if they were not indexed;
        `filters` keeps only passages from the chosen outlets and publication dates.
        """
        started = time.perf_counter()
        question = check_question(question, self.settings.max_question_chars)
        turns = self.settings.history_turns
        history = tuple(history)[-turns:] if turns else ()
        standalone = self.standalone(question, history)
        found = self.retriever.search(standalone, self.settings.top_k, exclude_articles, filters)
        passages, timings = found.passages, dict(found.timings)
        checking = time.perf_counter()
        evidence = gather_evidence(self.retriever, standalone, passages, found.question_vector)
        timings["evidence"] = time.perf_counter() - checking
        base = Answer(
            question=question,
            text=NOT_COVERED,
            citations=(),
            retrieved=tuple(passages),
            covered=False,
            backend=self.backend,
            standalone_question=standalone if standalone != question else None,
        )
        if evidence.best_relevance < self.settings.min_relevance:
            yield NOT_COVERED
            yield replace(base, seconds_total=time.perf_counter() - started, timings=timings)
            return
        if self.llm is None:
            text = extractive_text(evidence)
            yield text
            yield self.finish(
                replace(base, notice=self.model_problem), text, evidence, started, timings
            )
            return
        messages = build_messages(
            question,
            evidence,
            history,
            self.retriever.embedder.count_tokens,
            self.settings.prompt_passage_tokens,
        )
        generating = time.perf_counter()
        generated = yield from self.generate(messages, started)
        timings["generate"] = time.perf_counter() - generating
        answer = replace(
            base,
            seconds_to_first_token=generated.first_token_s,
            prompt_tokens=count_prompt_tokens(self.llm, messages),
        )
        if generated.notice is not None:
            yield from self.extractive_instead(answer, generated.notice, evidence, started, timings)
            return
        final = self.finish(answer, generated.text, evidence, started, timings)
        # A backed answer that only repeats what was asked ("It is known as the Pink Palace")
        # tells the user nothing: the best supporting sentences say more. An answer the check
        # rejected stays "not covered".
        if final.covered and adds_nothing(generated.text, last_sentence(standalone)):
            notice = (
                "The language model's answer only repeated the question, so these are the best "
                "supporting sentences instead."
            )
            yield from self.extractive_instead(answer, notice, evidence, started, timings)
            return
        yield final

    def generate(
        self, messages: list[BaseMessage], started: float
    ) -> Generator[str, None, Generated]:
        """Stream the model's answer to `messages`, piece by piece; what it wrote, and why it
        cannot be used if so (it failed, ran past the timeout, or wrote nothing)."""
        assert self.llm is not None
        generating = time.perf_counter()
        pieces: list[str] = []
        first: float | None = None
        notice: str | None = None
        try:
            for chunk in self.llm.stream(messages):
                if chunk.text:
                    if first is None:
                        first = time.perf_counter() - started
                    pieces.append(chunk.text)
                    yield chunk.text
                if time.perf_counter() - generating > self.settings.llm_timeout_s:
                    notice = (
                        f"The language model took longer than {self.settings.llm_timeout_s:g} s, "
                        "so these are the best supporting sentences instead."
                    )
                    break
        except (ModelWorkerError, ModelFileError) as e:  # crashed, killed, silent, unloadable
            log.warning("the model worker failed: %s", e)
            notice = f"The language model failed: {e} These are the best supporting sentences."
        except Exception as e:  # HTTP clients raise their own errors
            log.warning("the language model failed: %s", e)
            notice = (
                f"The language model failed ({type(e).__name__}), so these are the best "
                "supporting sentences instead."
            )
        text = "".join(pieces)
        if notice is None and not text.strip():  # a server that sent no text
            notice = (
                "The language model returned no answer, so these are the best supporting "
                "sentences instead."
            )
        return Generated(text, first, notice)

    def extractive_instead(
        self,
        answer: Answer,
        notice: str,
        evidence: Evidence,
        started: float,
        timings: dict[str, float],
    ) -> Iterator[str | Answer]:
        """The extractive answer after the model's text, with `notice` saying why."""
        text = extractive_text(evidence)
        yield "\n\n" + text
        fallback = replace(answer, backend="extractive", notice=notice)
        yield self.finish(fallback, text, evidence, started, timings)

    @property
    def backend(self) -> str:
        """Who writes the answers: the configured backend, or "extractive" without a model."""
        return "extractive" if self.llm is None else self.settings.llm_backend

    def standalone(self, question: str, history: History) -> str:
        """The question to retrieve with: rewritten to stand alone when it leans on history."""
        if not history:
            return question
        llm = self.llm if self.settings.rewrite_with_model else None
        return rewrite_question(question, answered_turns(history), llm)

    def finish(
        self,
        answer: Answer,
        raw: str,
        evidence: Evidence,
        started: float,
        timings: dict[str, float],
    ) -> Answer:
        """The final `Answer`: every sentence checked against the passages. An answer that the
        model declined, or that no passage backs at all, is "not covered"."""
        checking = time.perf_counter()
        checked = (
            None if is_not_covered(raw) else check_answer(raw, evidence, self.settings.min_support)
        )
        timings["check"] = time.perf_counter() - checking
        elapsed = time.perf_counter() - started
        if checked is None or not any(s.supported and s.markers for s in checked.sentences):
            return replace(answer, seconds_total=elapsed, timings=timings)
        relevance = max(
            evidence.span_relevance(c.marker, start, end)
            for c in checked.citations
            for start, end in c.spans
        )
        if relevance < self.settings.min_answer_relevance:
            return replace(answer, seconds_total=elapsed, timings=timings, relevance=relevance)
        return replace(
            answer,
            relevance=relevance,
            text=checked.text,
            citations=checked.citations,
            sentences=checked.sentences,
            covered=True,
            seconds_total=elapsed,
            timings=timings,
        )


def gather_evidence(
    retriever: PassageRetriever,
    question: str,
    passages: Sequence[RetrievedChunk],
    question_vector: Sequence[float] | None = None,
) -> Evidence:
    """The sentence-level evidence for `question` in `passages`, words weighted by rarity in
    the index when it has a keyword index; `question_vector`, retrieval's, saves embedding the
    question again."""
    keyword = retriever.keyword
    weight = keyword.term_weight if keyword is not None else None
    return Evidence(retriever.embedder, question, passages, weight, question_vector)


def last_sentence(question: str) -> str:
    """The question's last sentence: what is asked, after any context ("NASA set a new date for
    Artemis I. How soon could it launch?")."""
    spans = sentence_spans(question)
    return question[slice(*spans[-1])] if spans else question


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
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: no tokenizer can read it
        raise QuestionError(
            f"The question holds a character that is not valid text (at position {e.start + 1}); "
            "please retype the question."
        ) from e
    return stripped


def build_retriever(settings: Settings) -> PassageRetriever:
    """Load the embedding model and open the index, refusing one built with other settings."""
    embedder = open_embedder_for(settings)
    store = open_store(settings.index_dir, settings.collection, settings.chroma_url)
    store.check(fingerprint_for(settings, embedder))
    # The store moves itself and this keyword index to each new build a writer publishes.
    keyword = store.keyword_index() if settings.retriever != "dense" else None
    return PassageRetriever(
        embedder=embedder,
        store=store,
        keyword=keyword,
        mode=settings.retriever,
        k=settings.top_k,
        max_per_article=settings.max_passages_per_article,
    )


def build_chain(
    settings: Settings,
    retriever: PassageRetriever | None = None,
    *,
    degrade: bool = False,
) -> QAChain:
    """The retriever (built here unless given) and the chat model, loaded once and checked by
    writing a few tokens. A model that crashes, hangs or is killed there leaves a chain that
    gives extractive answers, each with a notice saying why; with `degrade`, so does a model
    file that cannot be used (the web page starts anyway), else that is a `ModelFileError`."""
    retriever = retriever or build_retriever(settings)
    try:
        llm = open_llm(settings)
        if llm is not None:
            check_generation(llm, fixed_messages())
    except ModelWorkerError as e:
        log.error("the language model failed its start-up check: %s", e)
        return QAChain(retriever, None, settings, model_problem=model_problem(e))
    except ModelFileError as e:
        if not degrade:
            raise
        log.error("the language model cannot be used: %s", e)
        return QAChain(retriever, None, settings, model_problem=model_problem(e))
    return QAChain(retriever, llm, settings)


def model_problem(error: Exception) -> str:
    """The notice answers carry while the configured model cannot run."""
    return (
        f"The language model could not start: {error} Until that is fixed, answers are the best "
        "supporting sentences. `python -m qa doctor` checks the set-up."
    )

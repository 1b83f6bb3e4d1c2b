"""The answering chain: question -> passages -> prompt -> model -> answer with checked markers.

`QAChain` is a LangChain `Runnable` (`invoke` gives an `Answer`); `events` streams text pieces
and ends with the `Answer`. `build_chain` loads the heavy parts (embedder, index, model) once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Collection, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

from index.embeddings import open_embedder_for
from index.fingerprint import fingerprint_for
from index.reader import open_store
from index.types import day_number
from qa.config import Settings
from qa.errors import GenerationError, ModelFileError, ModelWorkerError, QuestionError
from qa.evidence import Evidence, setting_weight
from qa.extractive import extractive_text
from qa.grounding import check_answer
from qa.llm import check_generation, count_prompt_tokens, open_llm
from qa.prompt import History, answered_turns, build_messages, fixed_messages, is_not_covered
from qa.retrieval import PassageFilter, PassageRetriever
from qa.rewrite import rewrite_question
from qa.shape import Shape, answer_shape
from qa.text import adds_nothing, last_sentence, sentence_spans
from qa.types import NOT_COVERED, Answer, Generated, RetrievedChunk
from qa.when import (
    RECENT_WINDOWS_DAYS,
    TimeScope,
    asks_only_for_news,
    newest_first,
    parse_as_of,
    read_time,
)

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
        (`[(question, answer), ...]`), `exclude_articles` (ids to leave out of retrieval),
        `filters` (a `PassageFilter`: outlets, publication dates) and `as_of` (the date the
        question is asked on, a date or `YYYY-MM-DD`; default today)."""
        filters: PassageFilter | None = None
        as_of: dt.date | str | None = None
        if isinstance(input, str):
            question, history, exclude = input, (), ()
        else:
            question = str(input["question"])
            history = tuple(input.get("history", ()))
            exclude = tuple(input.get("exclude_articles", ()))
            filters = input.get("filters")
            as_of = input.get("as_of")
        for event in self.events(question, history, exclude, filters, as_of):
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
        as_of: dt.date | str | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are written, then the checked `Answer`.

        A follow-up is first rewritten into a standalone question for retrieval. The question
        is asked `as_of` a date (default today): nothing published after it is used, and its
        time words ("this week", "latest", "in March") choose the publication days searched.
        Only the sentences that answer it are sent to the model: one cited sentence for a
        factoid question, a few for an open one. If the model fails or runs past the timeout,
        the extractive answer is given instead, with a notice.
        `exclude_articles` leaves those articles out of retrieval, as if they were not indexed;
        `filters` keeps only passages from the chosen outlets and publication dates.
        """
        started = time.perf_counter()
        question = check_question(question, self.settings.max_question_chars)
        day = check_as_of(as_of)
        turns = self.settings.history_turns
        history = tuple(history)[-turns:] if turns else ()
        standalone = self.standalone(question, history)
        scope = read_time(standalone, day)
        shape = answer_shape(standalone, asks_only_for_news(standalone, scope))
        found = self.find(Search(standalone, shape, tuple(exclude_articles), filters, day), scope)
        passages, evidence, timings = found.passages, found.evidence, found.timings
        base = Answer(
            question=question,
            text=NOT_COVERED,
            citations=(),
            retrieved=tuple(passages),
            covered=False,
            backend=self.backend,
            standalone_question=standalone if standalone != question else None,
            as_of=day.isoformat(),
            time_scope=found.scope.describe() if found.scope is not None else None,
            shape=shape,
        )
        if not passages or evidence.best_relevance < self.relevance_gate(shape):
            yield NOT_COVERED
            elapsed = time.perf_counter() - started
            yield replace(base, seconds_total=elapsed, timings=timings, refused="gate")
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
            self.passage_budget(shape),
            shape,
            day.isoformat(),
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
        text = generated.text if shape == "factoid" else first_sentences(generated.text)
        final = self.finish(answer, text, evidence, started, timings)
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

    def find(self, search: Search, scope: TimeScope | None) -> Found:
        """The passages for a question and their evidence, published by its as-of date and
        within the question's time (`scope`): a strict time ("this week") alone; the newest news
        in widening windows; a month or year, then the whole archive if nothing in it answers.
        A factoid question that names no time gets the last `newest_first_days` when they
        answer it about as well as the whole archive does (`NEWEST_MARGIN`); an open one ("how
        did ... develop") draws on the whole archive."""
        timings: dict[str, float] = {}
        gate = self.relevance_gate(search.shape)
        factoid = search.shape == "factoid"
        newest = self.newest_window(search.as_of) if scope is None and factoid else None
        if newest is not None:
            found = self.newest_or_archive(search, newest, gate, timings)
            if found is not None:
                return found
        scopes: list[TimeScope | None] = [scope]
        if scope is not None and scope.recent:
            scopes = [scope.widened(days) for days in (*RECENT_WINDOWS_DAYS[1:], None)]
            scopes.insert(0, scope)
        elif scope is not None and not scope.strict:
            scopes.append(scope.widened(None))
        for position, chosen in enumerate(scopes):
            found = self.search_in(search, chosen, timings)
            if found is None:  # the question's time and the page's filter do not meet
                continue
            answers = found.evidence.best_relevance >= gate
            if position == len(scopes) - 1 or (found.passages and answers):
                return found
        # Only when the question's time and the page's dates never meet.
        return Found((), gather_evidence(self.retriever, search.question, ()), timings, scope)

    def newest_or_archive(
        self, search: Search, newest: TimeScope, gate: float, timings: dict[str, float]
    ) -> Found | None:
        """The passages of the `newest` window when they pass the `gate` and answer about as
        well as the whole archive's (`NEWEST_MARGIN`), else the archive's; None when the page's
        own dates leave nothing to search (a start after the end)."""
        recent = self.search_in(search, newest, timings)
        archive = self.search_in(search, None, timings)
        if archive is None or recent is None or not recent.passages:
            return archive
        best = recent.evidence.best_relevance
        as_well = best >= archive.evidence.best_relevance - NEWEST_MARGIN
        return recent if best >= gate and as_well else archive

    def newest_window(self, as_of: dt.date) -> TimeScope | None:
        """The newest news a question that names no time is first answered from; None when
        turned off or when the index holds no article published in it (undated archives)."""
        if not self.settings.newest_first_days:
            return None
        scope = newest_first(as_of, self.settings.newest_first_days)
        latest = self.retriever.store.latest_day  # 0: nothing dated; None: not known
        first = day_number(scope.first.isoformat()) if scope.first else None
        if latest is not None and first is not None and latest < first:
            return None
        return scope

    def search_in(
        self, search: Search, scope: TimeScope | None, timings: dict[str, float]
    ) -> Found | None:
        """The passages for a question published within `scope` (None: up to its as-of date)
        and the page's filters, with their evidence; None when the two do not meet. Adds the
        seconds of each stage to `timings`."""
        window = within(search.filters, search.as_of, scope)
        if window is None:
            return None
        factoid = search.shape == "factoid"
        k = self.settings.top_k if factoid else max(self.settings.top_k, OPEN_TOP_K)
        # A digest draws on as many stories as it can: one passage from each.
        per_article = 1 if search.shape == "digest" else None
        found = self.retriever.search(
            search.question, k, search.exclude_articles, window, per_article
        )
        for stage, seconds in found.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        # An answer of several sentences tells events in order: its passages are numbered
        # oldest first.
        passages = found.passages if factoid else in_time_order(found.passages)
        checking = time.perf_counter()
        evidence = gather_evidence(self.retriever, search.question, passages, found.question_vector)
        timings["evidence"] = timings.get("evidence", 0.0) + time.perf_counter() - checking
        return Found(passages, evidence, timings, scope)

    def relevance_gate(self, shape: Shape) -> float:
        """The relevance the best sentence needs to be answered from: none for a digest, whose
        passages are chosen by their dates (any news of the period answers it)."""
        return 0.0 if shape == "digest" else self.settings.min_relevance

    def passage_budget(self, shape: Shape) -> int:
        """Passage tokens in the prompt: more for an answer of several sentences."""
        if shape == "factoid":
            return self.settings.prompt_passage_tokens
        return self.settings.open_passage_tokens

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
            refused = "model" if checked is None else "check"
            return replace(answer, seconds_total=elapsed, timings=timings, refused=refused)
        relevance = max(
            evidence.span_relevance(c.marker, start, end)
            for c in checked.citations
            for start, end in c.spans
        )
        if relevance < self.settings.min_answer_relevance:
            return replace(
                answer,
                seconds_total=elapsed,
                timings=timings,
                relevance=relevance,
                refused="relevance",
            )
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


# Passages retrieved for an open question or a digest (the factoid default is `top_k`), and the
# sentences of its answer that are kept (a small model sometimes writes on).
OPEN_TOP_K = 6
OPEN_SENTENCES = 5
# A question that names no time is answered from the newest news when its best sentence there
# is at most this much less relevant than the whole archive's best (RTQA 2024 dev).
NEWEST_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class Search:
    """What a question's passages are searched for: the standalone question, its answer's
    shape, the articles left out, the page's filters and the as-of date."""

    question: str
    shape: Shape
    exclude_articles: tuple[str, ...]
    filters: PassageFilter | None
    as_of: dt.date


@dataclass(frozen=True, slots=True)
class Found:
    """The passages found for a question, their evidence, the seconds each stage took and the
    time scope they were searched in."""

    passages: tuple[RetrievedChunk, ...]
    evidence: Evidence
    timings: dict[str, float]
    scope: TimeScope | None


def in_time_order(passages: Sequence[RetrievedChunk]) -> tuple[RetrievedChunk, ...]:
    """The passages oldest first (undated ones after, as retrieved), renumbered."""
    ordered = sorted(passages, key=lambda p: (p.chunk.published is None, p.chunk.published or ""))
    return tuple(replace(p, rank=rank) for rank, p in enumerate(ordered, start=1))


def within(
    filters: PassageFilter | None, as_of: dt.date, scope: TimeScope | None
) -> PassageFilter | None:
    """The page's filter narrowed to `scope` and capped at `as_of`; None if they do not meet."""
    base = filters or PassageFilter()
    first = base.published_from
    last = base.published_to
    if scope is not None and scope.first is not None:  # (the whole archive is capped by as_of)
        first = max(first or "", scope.first.isoformat())
        last = min(last or "9999-12-31", scope.last.isoformat())
    if first is not None and last is not None and first > last:
        return None
    return replace(base, published_from=first, published_to=last, as_of=as_of.isoformat())


def check_as_of(value: dt.date | str | None) -> dt.date:
    """The as-of date of a question (today when not given); `QuestionError` if unreadable."""
    if value is None or value == "":
        return dt.date.today()
    try:
        return parse_as_of(value)
    except ValueError as e:
        raise QuestionError(str(e)) from e


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
    if keyword is None:
        return Evidence(retriever.embedder, question, passages, None, question_vector)
    setting = setting_weight(keyword.weighed_chunks)  # the count the term weights are over
    weight = keyword.term_weight
    return Evidence(retriever.embedder, question, passages, weight, question_vector, setting)


def first_sentences(text: str, count: int = OPEN_SENTENCES) -> str:
    """The first `count` sentences of `text` (all of it when it has no more)."""
    spans = sentence_spans(text)
    return text if len(spans) <= count else text[: spans[count - 1][1]]


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

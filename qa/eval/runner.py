"""Running an evaluation: index the articles (cached by content), ask every question through the
real `qa` code, and score retrieval, answers, abstention and latency."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.build import index_articles
from index.embeddings import Embedder
from index.errors import CiteqaIndexError
from index.fingerprint import fingerprint_for
from index.progress import ProgressCallback
from index.reader import open_store
from index.sources import load_articles
from index.types import Article
from qa.chain import QAChain, gather_evidence
from qa.citations import clean_markers
from qa.config import Settings
from qa.eval.data import EvalQuestion
from qa.eval.metrics import (
    RetrievedSpan,
    answer_accuracy,
    citation_precision,
    exact_match,
    mean,
    passage_hit_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from qa.retrieval import PassageFilter, PassageRetriever
from qa.types import REFUSALS, Answer, RetrievedChunk

log = logging.getLogger(__name__)

RECALL_KS = (1, 3, 5, 10)
SEARCH_DEPTH = 10


@dataclass(frozen=True, slots=True)
class CorpusSpec:
    """Which articles go into the evaluation index."""

    articles: Path
    distractors: Path | None = None
    distractors_limit: int | None = None


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """What happened to one question."""

    question: EvalQuestion
    hidden: bool  # its gold articles were left out of retrieval ("unanswerable")
    retrieved: tuple[RetrievedChunk, ...]
    timings: dict[str, float]
    relevance: float  # the best sentence's relevance among the top_k passages (the gate's input)
    answer: Answer | None = None


@dataclass
class EvalRun:
    """Everything measured in one run, ready to summarise."""

    retriever: str
    results: list[QuestionResult] = field(default_factory=list)


def load_corpus(spec: CorpusSpec) -> list[Article]:
    """The gold articles plus (the first `distractors_limit`) distractors, ids unique."""
    articles = list(load_articles(spec.articles).articles)
    if not articles:
        raise CiteqaIndexError(f"No articles could be read from {spec.articles}.")
    if spec.distractors is not None:
        extra = list(load_articles(spec.distractors).articles)
        articles.extend(extra[: spec.distractors_limit])
    return articles


def corpus_key(articles: Sequence[Article], settings: Settings, embedder: Embedder) -> str:
    """A content hash of the articles and the index settings: the cache key of an eval index."""
    digest = hashlib.sha256(repr(fingerprint_for(settings, embedder)).encode())
    for article in articles:
        digest.update(
            "\x1f".join((article.id, article.title, article.text, article.source or "")).encode()
        )
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


def prepare_index(
    articles: Sequence[Article],
    settings: Settings,
    embedder: Embedder,
    cache_dir: Path,
    progress: ProgressCallback | None = None,
) -> Settings:
    """Settings pointing at an index of `articles`, built with the real index code or reused."""
    index_dir = cache_dir / corpus_key(articles, settings, embedder)
    # Always a local index: evaluation must never replace a shared server index.
    cached = settings.model_copy(update={"index_dir": index_dir, "chroma_url": None})
    try:
        open_store(index_dir, settings.collection).check(fingerprint_for(settings, embedder))
        log.info("reusing the evaluation index at %s", index_dir)
        return cached
    except CiteqaIndexError:
        pass
    index_articles(cached, embedder, articles, progress)
    return cached


def choose_hidden(questions: Sequence[EvalQuestion], share: float, seed: int) -> set[str]:
    """Ids of the questions whose gold articles are hidden, a seeded random `share` of them."""
    count = round(len(questions) * share)
    return {q.id for q in random.Random(seed).sample(list(questions), count)}


def run_questions(
    retriever: PassageRetriever,
    questions: Sequence[EvalQuestion],
    hidden: set[str],
    top_k: int,
    chain: QAChain | None = None,
    progress: ProgressCallback | None = None,
    as_of_dates: bool = True,
) -> EvalRun:
    """Ask every question: retrieval always, the full chain when `chain` is given. With
    `as_of_dates`, a question with a `question_date` is asked as of that date."""
    run = EvalRun(retriever=retriever.mode)
    for done, question in enumerate(questions, start=1):
        exclude = set(question.article_ids) if question.id in hidden else set()
        as_of = question.question_date if as_of_dates else None
        # Retrieval metrics need the top 10; the chain retrieves its own top_k again (a few ms
        # beside seconds of generation) so that the answer path is exactly the product's.
        capped = PassageFilter(as_of=as_of) if as_of else None
        found = retriever.search(question.question, SEARCH_DEPTH, exclude, capped)
        retrieved, timings = found.passages, dict(found.timings)
        relevance = gather_evidence(
            retriever, question.question, retrieved[:top_k], found.question_vector
        ).best_relevance
        answer = None
        if chain is not None:
            answer = chain.invoke(
                {
                    "question": question.question,
                    "exclude_articles": sorted(exclude),
                    "as_of": as_of,
                }
            )
            if "generate" in answer.timings:
                timings["generate"] = answer.timings["generate"]
        run.results.append(
            QuestionResult(question, bool(exclude), tuple(retrieved), timings, relevance, answer)
        )
        if progress is not None:
            progress(done, len(questions))
    return run


def retrieval_metrics(results: Sequence[QuestionResult]) -> dict[str, float | None]:
    """Article recall@k, MRR@10 and passage hit@5 over the answerable questions."""
    answerable = [r for r in results if not r.hidden]
    ranked = [[h.chunk.article_id for h in r.retrieved] for r in answerable]
    golds = [set(r.question.article_ids) for r in answerable]
    metrics: dict[str, float | None] = {
        f"recall@{k}": mean([recall_at_k(ids, g, k) for ids, g in zip(ranked, golds, strict=True)])
        for k in RECALL_KS
    }
    metrics["mrr@10"] = mean(
        [reciprocal_rank(ids, g, 10) for ids, g in zip(ranked, golds, strict=True)]
    )
    with_spans = [r for r in answerable if r.question.answer_spans]
    metrics["passage_hit@5"] = mean(
        [
            passage_hit_at_k(
                [
                    RetrievedSpan(h.chunk.article_id, h.chunk.start, h.chunk.end)
                    for h in r.retrieved
                ],
                r.question.answer_spans,
                5,
            )
            for r in with_spans
        ]
    )
    return metrics


def gate_metrics(
    results: Sequence[QuestionResult], min_relevance: float
) -> dict[str, float | None]:
    """How the chain's relevance gate alone ("not covered" before the model) decides."""

    def abstains(r: QuestionResult) -> float:
        return float(r.relevance < min_relevance)

    return {
        "gate_abstention": mean([abstains(r) for r in results if r.hidden]),
        "gate_false_abstention": mean([abstains(r) for r in results if not r.hidden]),
    }


def answer_metrics(results: Sequence[QuestionResult]) -> dict[str, float | None]:
    """Exact match, F1, answer accuracy, citation precision and abstention of the answers."""
    answered = [r for r in results if r.answer is not None]
    answerable = [r for r in answered if not r.hidden]
    texts = {r.question.id: clean_markers(r.answer.text, set()) for r in answered if r.answer}
    precisions = [
        citation_precision(
            [(c.article_id, c.passage, c.start, c.end) for c in r.answer.citations],
            r.question.answers,
            r.question.article_ids,
            r.question.evidence_spans,
        )
        for r in answerable
        if r.answer is not None
    ]
    hidden = [r for r in answered if r.hidden and r.answer is not None]
    # A hidden question can still be answerable: another article (news outlets cover the same
    # event) may hold its answer. Abstention is also reported on the hidden questions whose
    # passages hold no gold answer, and accuracy on those whose passages do.
    elsewhere = [r for r in hidden if answer_in_passages(r)]
    absent = [r for r in hidden if not answer_in_passages(r)]
    return {
        "exact_match": mean(
            [exact_match(texts[r.question.id], r.question.answers) for r in answerable]
        ),
        "f1": mean([token_f1(texts[r.question.id], r.question.answers) for r in answerable]),
        "answer_accuracy": mean(
            [answer_accuracy(texts[r.question.id], r.question.answers) for r in answerable]
        ),
        "citation_precision": mean([p for p in precisions if p is not None]),
        "answers_with_citations": mean(
            [float(bool(r.answer.citations)) for r in answerable if r.answer is not None]
        ),
        "unsupported_sentences": mean(
            [
                float(not sentence.supported)
                for r in answerable
                if r.answer is not None
                for sentence in r.answer.sentences
            ]
        ),
        "fallbacks": mean(
            [float(r.answer.notice is not None) for r in answered if r.answer is not None]
        ),
        "abstention": mean(
            [float(not r.answer.covered) for r in answered if r.hidden and r.answer is not None]
        ),
        "false_abstention": mean(
            [float(not r.answer.covered) for r in answerable if r.answer is not None]
        ),
        # Answered, and wrong: what a refusal of a wrong answer moves into false abstention.
        "wrong_answers": mean(
            [
                float(
                    r.answer.covered
                    and not answer_accuracy(texts[r.question.id], r.question.answers)
                )
                for r in answerable
                if r.answer is not None
            ]
        ),
        # False abstention by the step that refused (they add up to it).
        **{
            f"false_abstention_{step}": mean(
                [float(r.answer.refused == step) for r in answerable if r.answer is not None]
            )
            for step in REFUSALS
        },
        "hidden_answer_in_passages": mean([float(answer_in_passages(r)) for r in hidden]),
        "abstention_answer_absent": mean(
            [float(not r.answer.covered) for r in absent if r.answer is not None]
        ),
        "accuracy_answer_elsewhere": mean(
            [answer_accuracy(texts[r.question.id], r.question.answers) for r in elsewhere]
        ),
    }


# The words of a question about the last few days ("this week", "latest"); "recently" and "this
# month" reach further back.
WEEK_WORDS = re.compile(r"\b(?:this\s+week(?:end)?|latest)\b", re.IGNORECASE)


def time_metrics(results: Sequence[QuestionResult]) -> dict[str, float | int | None]:
    """For questions asked on a date: accuracy on those that name a relative time ("this
    week", "recently", "this month": the `relative_time` tag), and the share of their covered
    answers whose citations were all published in the 7 days up to the question's date, for
    all of them and for those that say "this week" or "latest" (`WEEK_WORDS`)."""
    dated = [r for r in results if r.answer is not None and r.question.question_date]
    relative = [r for r in dated if r.question.tag("relative_time") == "true" and not r.hidden]
    week = [r for r in relative if WEEK_WORDS.search(r.question.question)]
    recent = cites_last_week(relative)
    recent_week = cites_last_week(week)
    return {
        "relative_questions": len(relative),
        "relative_accuracy": mean(
            [
                answer_accuracy(clean_markers(r.answer.text, set()), r.question.answers)
                for r in relative
                if r.answer is not None
            ]
        ),
        "relative_answers_citing_last_7_days": mean([float(x) for x in recent]),
        "relative_answers_citing": len(recent),
        "week_answers_citing_last_7_days": mean([float(x) for x in recent_week]),
        "week_answers_citing": len(recent_week),
    }


def cites_last_week(results: Sequence[QuestionResult]) -> list[bool]:
    """For each covered answer with citations: whether all of them were published in the 7
    days up to its question's date."""
    return [
        all(published_within(c.published, r.question.question_date, 7) for c in r.answer.citations)
        for r in results
        if r.answer is not None and r.answer.covered and r.answer.citations
    ]


def open_metrics(results: Sequence[QuestionResult]) -> dict[str, float | int | None]:
    """For open questions with key facts: the share of key facts an answer states, and the
    share of answer sentences backed by their citations."""
    rows = [r for r in results if r.answer is not None and r.question.key_facts]
    recalls = []
    for r in rows:
        assert r.answer is not None
        text = clean_markers(r.answer.text, set()) if r.answer.covered else ""
        facts = r.question.key_facts
        recalls.append(sum(answer_accuracy(text, fact) for fact in facts) / len(facts))
    sentences = [
        float(s.supported and bool(s.markers))
        for r in rows
        if r.answer is not None and r.answer.covered
        for s in r.answer.sentences
    ]
    return {
        "open_questions": len(rows),
        "key_fact_recall": mean(recalls),
        "backed_sentences": mean(sentences),
        "sentences_per_answer": mean(
            [float(len(r.answer.sentences)) for r in rows if r.answer and r.answer.covered]
        ),
    }


def published_within(published: str | None, as_of: str | None, days: int) -> bool:
    """Whether `published` falls in the `days` days up to `as_of` (both ISO dates)."""
    if not published or not as_of:
        return False
    try:
        day = dt.date.fromisoformat(published[:10])
        end = dt.date.fromisoformat(as_of[:10])
    except ValueError:
        return False
    return end - dt.timedelta(days=days) <= day <= end


def answer_in_passages(result: QuestionResult) -> bool:
    """Whether the passages the chain retrieved hold a gold answer (as whole tokens): for a
    question whose own articles were hidden, another article may answer it."""
    if result.answer is None:
        return False
    return any(
        answer_accuracy(hit.chunk.text, result.question.answers) == 1.0
        for hit in result.answer.retrieved
    )


def latency_metrics(results: Sequence[QuestionResult]) -> dict[str, Any]:
    """p50/p95 milliseconds per stage and for retrieval (embed + search) per question, time to
    first token, and prompt tokens. Retrieval is timed apart for questions whose articles were
    hidden, since a filtered search is slower."""
    stages: dict[str, dict[str, float]] = {}
    for stage in ("embed", "search", "generate"):
        values = [r.timings[stage] * 1000 for r in results if stage in r.timings]
        if values:
            stages[stage] = {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
    retrieval: dict[str, dict[str, float]] = {}
    for name, hidden in (("retrieval", False), ("retrieval_filtered", True)):
        values = [
            (r.timings["embed"] + r.timings["search"]) * 1000 for r in results if r.hidden == hidden
        ]
        if values:
            retrieval[name] = {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
    first = [
        r.answer.seconds_to_first_token
        for r in results
        if r.answer is not None and r.answer.seconds_to_first_token is not None
    ]
    tokens = [
        float(r.answer.prompt_tokens)
        for r in results
        if r.answer is not None and r.answer.prompt_tokens is not None
    ]
    return {
        **retrieval,
        "stages": stages,
        "first_token_s": {"p50": percentile(first, 50), "p95": percentile(first, 95)}
        if first
        else None,
        "prompt_tokens": {"mean": mean(tokens), "p50": percentile(tokens, 50)} if tokens else None,
    }


def answer_rows(results: Sequence[QuestionResult]) -> list[dict[str, Any]]:
    """One record per answered question, for the report: what was said, cited and scored."""
    rows = []
    for r in results:
        if r.answer is None:
            continue
        text = clean_markers(r.answer.text, set())
        rows.append(
            {
                "id": r.question.id,
                "question": r.question.question,
                "hidden": r.hidden,
                "gate_relevance": round(r.relevance, 4),
                "answer_in_passages": answer_in_passages(r),
                "covered": r.answer.covered,
                "refused": r.answer.refused,
                "answer": r.answer.text,
                "answer_relevance": r.answer.relevance,
                "correct": answer_accuracy(text, r.question.answers) if r.answer.covered else 0.0,
                "gold": list(r.question.answers[:3]),
                "citations": [[c.marker, c.article_id] for c in r.answer.citations],
                "unsupported": list(r.answer.unsupported),
                "backend": r.answer.backend,
                "notice": r.answer.notice,
                "first_token_s": r.answer.seconds_to_first_token,
                "total_s": round(r.answer.seconds_total, 2),
                "prompt_tokens": r.answer.prompt_tokens,
                "as_of": r.answer.as_of,
                "time_scope": r.answer.time_scope,
                "shape": r.answer.shape,
                "cited_published": [c.published for c in r.answer.citations],
            }
        )
    return rows

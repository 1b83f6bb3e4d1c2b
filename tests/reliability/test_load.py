"""Load: the real app (`python app.py` in a subprocess on a loopback port, over a real index of the
sample articles and a few dev-set articles) asked by chat users through `gradio_client`.

- Eight users ask dev-set questions (SQuAD and RealTime QA dev, read from the evaluation data
  beside the repository when it is there) for a while: no errors, every reply the finished answer
  to that user's own question, p95 reported; part of the time a `python -m index sync` that adds
  one article and changes another runs in another process: still no errors, and the app answers
  from the new build afterwards without a restart. The app's RSS at start (after one warm-up
  question per user) and at the end: no growth beyond 10% (held in the long run only).
- Sixteen users submit at once against the bounded queue (`CITEQA_QUEUE_SIZE`): those past it are
  refused within a second with "Queue is full", the others answered.

The short run is part of `make test`; the long one (`CITEQA_SOAK_LOAD_S` seconds, default 600)
is marked `soak`. The load runs without a language model (the extractive backend, or the page's
fast mode), so it measures the app rather than generation on a small CPU; the queue check uses
SmolLM2, whose answers take long enough for the queue to fill.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from huggingface_hub import constants as hub_constants

from index.build import rebuild_index
from index.embeddings import Embedder
from qa.eval.data import load_questions
from tests.conftest import ROOT, SAMPLE_ARTICLES, ReliabilityRow, make_settings
from tests.support.servers import Served, serve_app, user_env

# The shared evaluation sets sit beside the repository (as bench/ finds them); without them the
# load uses the bundled SQuAD dev questions about the sample articles.
EVAL_DIR = ROOT.parent / "shared" / "eval"
FIXTURE_QUESTIONS = ROOT / "tests" / "fixtures" / "squad-sample-questions.jsonl"
RTQA_ARTICLES = 4  # RealTime QA dev articles indexed beside the sample
RTQA_UNCOVERED = 24  # RealTime QA dev questions whose article is not indexed ("not covered")

USERS = 8
BURST_USERS = 16
QUEUE_SIZE = 8  # one answer runs, eight wait: eight users always fit, sixteen do not
FAST_LOAD_S = 15.0
SOAK_LOAD_S = float(os.environ.get("CITEQA_SOAK_LOAD_S", "600"))
NEW_CONVERSATION_EVERY = 5  # questions per conversation before a user starts a new one
MAX_RSS_GROWTH = 0.10
BURST_QUESTION = "Who won Super Bowl 50?"  # covered: the model is asked (seconds on SmolLM2)
QUEUE_FULL_WITHIN_S = 1.0  # the bound for a refusal
ANSWER_TIMEOUT_S = 300.0
START_TIMEOUT_S = 240.0

# What each run's sync adds, one paragraph a line as in the sample's articles (a story no other
# article tells, each run its own, so that a second run adds rather than finds a duplicate), the
# question about it and a name its answer must quote.
SYNC_STORIES = {
    "fast": (
        "tollhaven-lighthouse.md",
        """---
source: Harbour Gazette
published: 2024-05-02
---
# Tollhaven lighthouse lit again after restoration

The Tollhaven lighthouse was lit again on Thursday after a two-year restoration led by the \
engineer Maren Oakridge. Her team replaced the lantern's brass frame and rebuilt the keeper's \
stairs with oak from the old pier. The light can be seen 19 nautical miles out to sea, the \
harbour board said. Visitors may climb the tower on Saturdays from June.
""",
        "Who led the restoration of the Tollhaven lighthouse?",
        "Tollhaven",
    ),
    "soak": (
        "brackenfield-ferry.md",
        """---
source: Valley Courier
published: 2024-06-11
---
# Brackenfield ferry returns with an electric hull

The Brackenfield river ferry returned to service on Monday with a new electric hull built at \
the Quillon yard. Captain Tobias Wren said the crossing now takes eleven minutes and carries \
forty bicycles. The county paid for the hull with a grant from its transport fund, and fares \
stay at one pound for children.
""",
        "Who captains the Brackenfield ferry, and how long does the crossing take?",
        "Brackenfield",
    ),
}
# Appended to the Xinhua article by each sync: the same file, new content, so "updated".
SYNC_EDIT = "\nThe forum closed with a call for more exchanges between young engineers.\n"


# ---- the corpus and its questions ----


@dataclass(frozen=True)
class Corpus:
    articles: Path
    index: Path
    questions: tuple[str, ...]
    origin: str  # where the questions come from, for the summary


def dev_corpus(articles: Path) -> tuple[list[str], str]:
    """Write a few RealTime QA dev articles beside the sample; the dev questions about what is
    indexed (and some about what is not), shuffled. Falls back to the bundled questions."""
    squad = EVAL_DIR / "squad_v1.1" / "questions.dev.jsonl"
    rtqa = EVAL_DIR / "realtimeqa_2022"
    if not squad.is_file() or not (rtqa / "questions.dev.jsonl").is_file():
        fallback = [q.question for q in load_questions(FIXTURE_QUESTIONS)]
        return fallback, f"{len(fallback)} bundled SQuAD dev questions"
    sample_ids = {
        json.loads(line)["id"]
        for line in (SAMPLE_ARTICLES / "squad-sample.jsonl").read_text("utf-8").splitlines()
    }
    squad_questions = [
        q.question for q in load_questions(squad) if set(q.article_ids) <= sample_ids
    ]
    rtqa_questions = load_questions(rtqa / "questions.dev.jsonl")
    chosen: list[str] = []
    for q in rtqa_questions:
        for article_id in q.article_ids:
            if article_id not in chosen and len(chosen) < RTQA_ARTICLES:
                chosen.append(article_id)
    records = {}
    for line in (rtqa / "articles.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        if record["id"] in chosen:
            keep = ("id", "title", "text", "source", "url", "published", "authors")
            records[record["id"]] = {k: record.get(k) for k in keep}
    (articles / "rtqa-dev.jsonl").write_text(
        "".join(json.dumps(records[i]) + "\n" for i in chosen), encoding="utf-8"
    )
    covered = [q.question for q in rtqa_questions if set(q.article_ids) <= set(chosen)]
    uncovered = [q.question for q in rtqa_questions if not set(q.article_ids) & set(chosen)]
    questions = squad_questions + covered + uncovered[:RTQA_UNCOVERED]
    random.Random(8).shuffle(questions)
    origin = (
        f"{len(squad_questions)} SQuAD dev + {len(covered)} RTQA dev questions on the index, "
        f"{min(len(uncovered), RTQA_UNCOVERED)} RTQA dev not on it"
    )
    return questions, origin


@pytest.fixture(autouse=True)
def client_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gradio_client` builds Hugging Face headers, which fetch a registry from the Hub unless
    huggingface_hub knows it is offline; it read the environment when it was imported, before
    the session set the offline switches."""
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Corpus:
    """A writable copy of the sample articles plus a few dev-set articles, indexed for real."""
    root = tmp_path_factory.mktemp("load")
    articles = root / "articles"
    shutil.copytree(SAMPLE_ARTICLES, articles)
    questions, origin = dev_corpus(articles)
    settings = make_settings(root / "index", articles_dir=articles)
    rebuild_index(settings, embedder, articles)
    return Corpus(articles, root / "index", tuple(questions), origin)


# ---- the app in its own process ----


def app_env(corpus: Corpus, **settings: str) -> dict[str, str]:
    """This environment without any CITEQA_* setting of the caller, offline, plus `settings`."""
    env = user_env(
        CITEQA_INDEX_DIR=str(corpus.index),
        CITEQA_ARTICLES_DIR=str(corpus.articles),
        CITEQA_LLM_THREADS="2",
        CITEQA_QUEUE_SIZE=str(QUEUE_SIZE),
    )
    env.update({f"CITEQA_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def serve(corpus: Corpus, name: str, **settings: str) -> Iterator[Served]:
    """`python app.py` on a free loopback port with `settings`, until the block ends."""
    log = corpus.index.parent / f"{name}.log"
    env = app_env(corpus, **settings)
    with serve_app(corpus.index.parent, env, log, START_TIMEOUT_S) as app:
        yield app


@pytest.fixture(scope="module")
def smol_app(corpus: Corpus) -> Iterator[Served]:
    """The app with SmolLM2: the load asks in fast mode, the queue check asks the model."""
    with serve(corpus, "smol", llm_model="smollm2-135m", max_answer_tokens="64") as app:
        yield app


# ---- users ----


@dataclass(frozen=True)
class Request:
    user: int
    question: str
    start: float
    end: float
    error: str | None = None

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


def connect(url: str) -> Client:
    """A user's session. Plain HTTP on loopback, so no certificate to check: `ssl_verify=False`
    spares each request the CA bundle that `gradio_client` otherwise loads for every request
    (25 ms of the test's CPU each; sixteen users at once would add it to every reply)."""
    return Client(
        url, verbose=False, analytics_enabled=False, download_files=False, ssl_verify=False
    )


def reply_problem(result: Any, question: str, turns: int) -> str | None:
    """What is wrong with the reply to `question` as the `turns`-th of its conversation, if
    anything: it must be the finished answer, after this user's own question."""
    chat = result[0] if isinstance(result, tuple | list) and result else None
    if not isinstance(chat, list) or len(chat) != 2 * turns:
        return f"expected {2 * turns} chat messages, got {chat!r:.300}"
    asked, answer = chat[-2], chat[-1]
    if asked.get("role") != "user" or html.escape(" ".join(question.split())) not in str(
        asked.get("content")
    ):
        return f"the reply is to another question: {asked!r:.300}"
    content = str(answer.get("content"))
    if answer.get("role") != "assistant" or 'class="cq-answer' not in content:
        return f"not an answer: {answer!r:.300}"
    if "cq-draft" in content:
        return f"an unfinished answer: {content:.300}"
    return None


@dataclass
class Load:
    """Users asking questions in fast mode until `stop` is set; every request recorded."""

    url: str
    questions: tuple[str, ...]
    users: int
    stop: threading.Event = field(default_factory=threading.Event)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = itertools.cycle(self.questions)
        self.clients = [connect(self.url) for _ in range(self.users)]

    def question(self) -> str:
        with self._lock:
            return next(self._next)

    def ask(self, user: int, client: Client, turns: int) -> Request:
        question = self.question()
        start = time.monotonic()
        try:
            result = client.predict(question, True, [], None, None, api_name="/ask")
            problem = reply_problem(result, question, turns)
        except Exception as e:  # every failure is recorded and counted
            problem = f"{type(e).__name__}: {e}"
        request = Request(user, question, start, time.monotonic(), problem)
        with self._lock:
            self.requests.append(request)
        return request

    def warm_up(self) -> None:
        """One question per user, all at once (the first answers load what the app lazily
        loads); not part of the measured load."""
        threads = [
            threading.Thread(target=self.ask, args=(i, c, 1)) for i, c in enumerate(self.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def user(self, number: int, client: Client) -> None:
        turns = 1  # the warm-up question
        while not self.stop.is_set():
            if turns == NEW_CONVERSATION_EVERY:
                try:
                    chat = client.predict(api_name="/new_conversation")[0]
                    error = None if chat == [] else f"new conversation kept {chat!r:.200}"
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
                if error:
                    now = time.monotonic()
                    with self._lock:
                        self.requests.append(Request(number, "(new conversation)", now, now, error))
                turns = 0
            turns += 1
            if self.ask(number, client, turns).error:
                return  # this conversation is out of step now; the error is counted

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self.user, args=(i, c), daemon=True)
            for i, c in enumerate(self.clients)
        ]
        for t in self._threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=ANSWER_TIMEOUT_S)
        for client in self.clients:
            client.close()


def p95_ms(requests: list[Request]) -> float:
    times = sorted(r.ms for r in requests)
    if len(times) < 2:
        return times[0] if times else 0.0
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


def errors_of(requests: list[Request]) -> list[str]:
    return [f"user {r.user}, {r.question!r}: {r.error}" for r in requests if r.error]


# ---- a sync beside the load ----


@dataclass(frozen=True)
class SyncRun:
    start: float
    end: float
    returncode: int
    output: str


def run_sync(corpus: Corpus, tag: str) -> SyncRun:
    """Add one article and change another in the articles folder, then `python -m index sync`
    in its own process, as a user would."""
    name, text, _, _ = SYNC_STORIES[tag]
    (corpus.articles / name).write_text(text, encoding="utf-8")
    xinhua = next(corpus.articles.glob("xinhua-*.txt"))
    xinhua.write_text(xinhua.read_text("utf-8") + SYNC_EDIT, encoding="utf-8")
    env = app_env(corpus)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "index", "sync", "--source", str(corpus.articles)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return SyncRun(start, time.monotonic(), done.returncode, done.stdout + done.stderr)


def status_articles(client: Client) -> tuple[int, str]:
    """The article count and build id the page's status panel shows."""
    status = str(client.predict(api_name="/index_status")[0])
    articles = re.search(r"<th>Articles</th><td>(\d+)</td>", status)
    build = re.search(r"<th>Build</th><td>([^<]+)</td>", status)
    assert articles, status
    assert build, status
    return int(articles.group(1)), build.group(1)


def sample_rss(app: Served, every: float, stop: threading.Event, into: list[int]) -> None:
    """Append the app's RSS to `into` every `every` seconds until `stop` is set."""
    while not stop.wait(every):
        into.append(app.rss())


def load_with_sync(
    app: Served,
    corpus: Corpus,
    seconds: float,
    tag: str,
    rows: list[ReliabilityRow],
    *,
    check_rss: bool,
) -> None:
    """Eight users for `seconds` (and until a sync started a quarter of the way in has ended and
    been followed by a few more answers); then the checks and the summary rows. `check_rss`:
    hold the RSS to `MAX_RSS_GROWTH` (a short run measures mostly the first minute's caches)."""
    checker = connect(app.url)
    articles_before, build_before = status_articles(checker)
    load = Load(app.url, corpus.questions, USERS)
    timeline: list[int] = []  # the app's RSS each tenth of the run
    try:
        load.warm_up()
        rss_start = app.rss()
        begun = time.monotonic()
        load.start()
        sampler = threading.Thread(
            target=sample_rss, args=(app, seconds / 10, load.stop, timeline), daemon=True
        )
        sampler.start()
        time.sleep(seconds / 4)
        rss_sync = app.rss()
        sync = run_sync(corpus, tag)
        time.sleep(max(begun + seconds - time.monotonic(), 2.0))
    finally:
        load.finish()
    rss_end = app.rss()
    measured = [r for r in load.requests if r.start >= begun]
    during = [r for r in measured if r.start < sync.end and r.end > sync.start]

    row_name = f"{USERS} users, {seconds / 60:.0f} min" if seconds >= 60 else f"{USERS} users"
    drift = rss_end / rss_start - 1
    rows.append(
        ReliabilityRow(
            part=f"load: {row_name} (extractive)",
            inputs=len(measured),
            errors=len(errors_of(load.requests)),
            p95_ms=p95_ms(measured),
            rss_drift=drift,
            note=f"{time.monotonic() - begun:.0f} s; {corpus.origin}; RSS after warm-up "
            f"{rss_start / 1e6:.0f} MB, before the sync {rss_sync / 1e6:.0f}, end "
            f"{rss_end / 1e6:.0f}; each tenth of the run "
            f"{', '.join(f'{r / 1e6:.0f}' for r in timeline)}",
        )
    )
    rows.append(
        ReliabilityRow(
            part=f"load: {USERS} users during sync",
            inputs=len(during),
            errors=len(errors_of(during)),
            p95_ms=p95_ms(during),
            note=f"sync {sync.end - sync.start:.0f} s in another process (1 added, 1 updated)",
        )
    )

    assert sync.returncode == 0, sync.output
    assert re.search(r"Added:\s+1\n", sync.output), sync.output
    assert re.search(r"Updated:\s+1\n", sync.output), sync.output
    assert errors_of(load.requests) == []
    assert during, "no question was answered while the sync ran"
    assert len(measured) >= USERS
    # The app moved to the new build without a restart and answers from the added article.
    articles_after, build_after = status_articles(checker)
    assert (articles_after, build_after != build_before) == (articles_before + 1, True)
    _, text, question, name = SYNC_STORIES[tag]
    chat, sources, *_ = checker.predict(question, True, [], None, None, api_name="/ask")
    assert name in str(chat[-1]["content"])
    assert html.escape(text.split("# ", 1)[1].splitlines()[0]) in str(sources)
    checker.close()
    if check_rss:
        assert drift <= MAX_RSS_GROWTH, f"RSS grew {drift:+.1%} ({rss_start} -> {rss_end} bytes)"


# ---- the tests ----


def test_eight_users_with_a_sync_beside_them(
    smol_app: Served, corpus: Corpus, reliability: list[ReliabilityRow]
) -> None:
    load_with_sync(smol_app, corpus, FAST_LOAD_S, "fast", reliability, check_rss=False)


@dataclass(frozen=True)
class Outcome:
    seconds: float
    answered: bool
    message: str


def test_sixteen_users_against_the_bounded_queue(
    smol_app: Served, reliability: list[ReliabilityRow]
) -> None:
    clients = [connect(smol_app.url) for _ in range(BURST_USERS)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(BURST_USERS)

    def user(client: Client) -> None:
        barrier.wait()
        start = time.monotonic()
        try:
            result = client.predict(BURST_QUESTION, False, [], None, None, api_name="/ask")
            problem = reply_problem(result, BURST_QUESTION, 1)
            outcome = Outcome(time.monotonic() - start, problem is None, problem or "answered")
        except Exception as e:
            outcome = Outcome(time.monotonic() - start, False, f"{type(e).__name__}: {e}")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=user, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=ANSWER_TIMEOUT_S)
    for client in clients:
        client.close()

    refused = [o for o in outcomes if not o.answered and "Queue is full" in o.message]
    answered = [o for o in outcomes if o.answered]
    slowest_refusal = max((o.seconds for o in refused), default=0.0)
    reliability.append(
        ReliabilityRow(
            part=f"load: {BURST_USERS} users, bounded queue",
            inputs=len(outcomes),
            errors=len(outcomes) - len(refused) - len(answered),
            p95_ms=p95_ms([Request(0, "", 0, o.seconds) for o in answered]),
            note=f"queue {QUEUE_SIZE} + 1 running (SmolLM2): {len(answered)} answered, "
            f"{len(refused)} refused 'Queue is full', slowest refusal "
            f"{slowest_refusal * 1000:.0f} ms",
        )
    )
    assert len(outcomes) == BURST_USERS
    assert [o.message for o in outcomes if not o.answered and o not in refused] == []
    assert refused, "every one of sixteen users got in: the queue was not bounded"
    assert len(answered) >= QUEUE_SIZE + 1  # nobody was refused while there was room
    assert slowest_refusal < QUEUE_FULL_WITHIN_S


@pytest.mark.soak
@pytest.mark.server
@pytest.mark.timeout(SOAK_LOAD_S + 900)
def test_eight_users_for_ten_minutes_with_a_sync(
    corpus: Corpus, reliability: list[ReliabilityRow]
) -> None:
    with serve(corpus, "extractive", llm_backend="extractive") as app:
        load_with_sync(app, corpus, SOAK_LOAD_S, "soak", reliability, check_rss=True)

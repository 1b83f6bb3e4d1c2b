"""kill -9 at random moments of real `python -m index sync` and `rebuild` processes, while a
reader keeps the index open: after every kill the index opens, answers a known question, holds
exactly the articles of before or after the run, the reader follows, and the next sync completes.
Their syncs write layered builds (index.layering) until edits hide half of the oldest build, then
complete ones: both paths are killed.

`make test` lands 3 kills; `make soak` lands 30. `CITEQA_TEST_KILL_SEED` replays a run (the seed
is printed).
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.fingerprint import fingerprint_for
from index.layout import list_builds, read_pointer
from index.reader import Store, open_store
from tests.conftest import ReliabilityRow
from tests.index.conftest import builds_in_use, layout_of, write_article
from tests.support.commands import holds_lock, run_index, wait_for, writing
from tests.support.factories import article_text

KNOWN_TITLE = "Lindholm harbour reopens"
KNOWN_QUESTION = "Which harbour reopened after the storm?"


def write_numbered(corpus: Path, number: int, version: int) -> None:
    rng = random.Random(number * 1000 + version)
    write_article(corpus, f"a{number:03d}.txt", f"Report {number}", article_text(rng, 6))


def state_of(corpus: Path) -> dict[str, str]:
    """What an index of `corpus` holds, by origin (file path) -> title line and text."""
    return {str(p): p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))}


def check_live(settings: IndexSettings, embedder: Embedder, reader: Store) -> frozenset[str]:
    """Open the index as a new reader would, answer the known question there and through the
    long-lived reader; the origins of the articles it holds."""
    store = open_store(settings.index_dir, settings.collection)
    try:
        store.check(fingerprint_for(settings, embedder))
        assert len(store.keyword_index()) == store.count() > 0
        question = embedder.embed_query(KNOWN_QUESTION)
        assert store.query(question, 1)[0].chunk.title == KNOWN_TITLE
        assert reader.query(question, 1)[0].chunk.title == KNOWN_TITLE  # follows, never fails
        assert reader.build_id == store.build_id == read_pointer(layout_of(settings))
        assert reader.keyword_index().search("harbour storm", 1)
        return frozenset(e.origin for e in store.manifest.articles.values())
    finally:
        store.close()


def kill_writers(tmp_path: Path, embedder: Embedder, kills: int) -> tuple[int, int, int]:
    """Land `kills` kills; (kills landed, runs started, runs that finished first)."""
    seed = int(os.environ.get("CITEQA_TEST_KILL_SEED", random.randrange(1_000_000)))
    print(f"kills: {kills}, seed: {seed}")
    rng = random.Random(seed)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(
        corpus, "known.txt", KNOWN_TITLE, "The harbour of Lindholm reopened after the storm."
    )
    numbers = list(range(8))
    for number in numbers:
        write_numbered(corpus, number, 0)
    settings = IndexSettings(index_dir=tmp_path / "idx")
    layout = layout_of(settings)
    sync_index(settings, embedder, corpus)
    reader = open_store(settings.index_dir, settings.collection)
    reader.check(fingerprint_for(settings, embedder))
    reader.keyword_index()
    durations = {anchor: 20.0 for anchor in ("lock", "write")}  # refined as runs finish
    landed = attempts = finished = 0
    next_number = len(numbers)
    try:
        while landed < kills:
            attempts += 1
            assert attempts <= 3 * kills + 3, f"only {landed} of {attempts} kills landed"
            before = frozenset(state_of(corpus))
            before_texts = state_of(corpus)
            command = rng.choice(["rebuild", "sync"])
            for number in rng.sample(numbers, 2):  # edit two, remove one, add one
                write_numbered(corpus, number, attempts)
            gone = numbers.pop(rng.randrange(len(numbers)))
            (corpus / f"a{gone:03d}.txt").unlink()
            write_numbered(corpus, next_number, 0)
            numbers.append(next_number)
            next_number += 1
            after = frozenset(state_of(corpus))

            builds_before = set(list_builds(layout))
            writer = run_index(settings, command, corpus)
            anchor = rng.choice(["lock", "write"])
            if anchor == "lock":
                started = wait_for(functools.partial(holds_lock, layout, writer.pid), writer)
            else:
                started = wait_for(functools.partial(writing, layout, builds_before), writer)
            began = time.monotonic()
            try:
                writer.wait(timeout=rng.uniform(0, durations[anchor]) if started else 0)
                if started:
                    durations[anchor] = time.monotonic() - began
            except subprocess.TimeoutExpired:
                os.kill(writer.pid, signal.SIGKILL)
            code = writer.wait(timeout=600)
            stderr = writer.stderr.read().decode() if writer.stderr else ""
            assert code in (0, -signal.SIGKILL), stderr
            landed += code == -signal.SIGKILL
            finished += code == 0
            print(
                f"{attempts}: {command} from the {anchor}: {'finished' if code == 0 else 'killed'}"
            )

            held = check_live(settings, embedder, reader)
            assert held in (before, after), "the index holds neither the old nor the new corpus"
            if code == 0:
                assert held == after
            # The next writer completes and brings the index exactly in step.
            report = sync_index(settings, embedder, corpus)
            print(
                f"   the next sync read {report.layers} earlier build(s); "
                f"published: {report.published}"
            )
            assert check_live(settings, embedder, reader) == after
            assert list_builds(layout) == builds_in_use(layout)
            changed = {o for o in after if before_texts.get(o) != state_of(corpus)[o]}
            if held == before:
                assert len(report.added) + len(report.updated) == len(changed)
    finally:
        reader.close()
    print(f"{landed} kills in {attempts} runs ({finished} finished first), every one survived")
    return landed, attempts, finished


def record(rows: list[ReliabilityRow], landed: int, attempts: int, finished: int) -> None:
    rows.append(
        ReliabilityRow(
            part="kill -9 during sync/rebuild",
            inputs=attempts,
            faults=landed,
            kills_survived=landed,
            note=f"{finished} runs finished before their kill; a reader stayed open throughout",
        )
    )


@pytest.mark.slow  # kills writer processes
def test_a_few_kills_leave_a_working_index(
    tmp_path: Path, embedder: Embedder, reliability: list[ReliabilityRow]
) -> None:
    landed, attempts, finished = kill_writers(tmp_path, embedder, kills=3)
    assert landed == 3
    record(reliability, landed, attempts, finished)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_thirty_kills_leave_a_working_index(
    tmp_path: Path, embedder: Embedder, reliability: list[ReliabilityRow]
) -> None:
    landed, attempts, finished = kill_writers(tmp_path, embedder, kills=30)
    assert landed == 30
    record(reliability, landed, attempts, finished)

"""kill -9 at random moments of real `rebuild` and `sync` processes never breaks the index.

`CITEQA_TEST_KILLS` sets how many writers are killed (default 6, so `make test` stays quick; a
writer that finishes before its kill does not count) and `CITEQA_TEST_KILL_SEED` the random seed
(printed, to replay a run).
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

from index.config import IndexSettings
from index.embeddings import Embedder
from index.fingerprint import fingerprint_for
from index.layout import list_builds, read_pointer
from index.reader import open_store
from index.sources import load_sources
from tests.index.conftest import builds_in_use, layout_of, write_article
from tests.support.commands import holds_lock, run_index, wait_for, writing
from tests.support.factories import article_text

KILLS = int(os.environ.get("CITEQA_TEST_KILLS", "6"))


def write_corpus_article(folder: Path, number: int, version: int = 0) -> None:
    rng = random.Random(number * 1000 + version)
    write_article(folder, f"a{number:03d}.txt", f"Report {number}", article_text(rng, 14))


def check_index(settings: IndexSettings, embedder: Embedder, expect_ids: set[str] | None) -> None:
    """What a reader does at start-up, and a question answered by both retrievers."""
    store = open_store(settings.index_dir, settings.collection)
    try:
        store.check(fingerprint_for(settings, embedder))
        keyword = store.keyword_index()
        assert len(keyword) == store.count() > 0
        hit = store.query(embedder.embed_query("the harbour of the council"), 1)[0]
        assert hit.chunk.article_id in store.manifest.articles
        assert keyword.search("harbour council", 1)[0].article_id in store.manifest.articles
        if expect_ids is not None:
            assert set(store.manifest.articles) == expect_ids
    finally:
        store.close()


@pytest.mark.slow  # kills a dozen writer processes
def test_killing_writers_at_random_moments_leaves_a_working_index(
    tmp_path: Path, embedder: Embedder
) -> None:
    seed = int(os.environ.get("CITEQA_TEST_KILL_SEED", random.randrange(1_000_000)))
    print(f"kills: {KILLS}, seed: {seed}")
    rng = random.Random(seed)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    numbers = list(range(24))
    for number in numbers:
        write_corpus_article(corpus, number)
    settings = IndexSettings(index_dir=tmp_path / "idx")
    layout = layout_of(settings)

    # A first complete rebuild, timed from taking the lock and from starting its build.
    first = run_index(settings, "rebuild", corpus)
    assert wait_for(functools.partial(holds_lock, layout, first.pid), first)
    locked_at = time.monotonic()
    assert wait_for(functools.partial(writing, layout, set()), first)
    writing_at = time.monotonic()
    assert first.wait(timeout=600) == 0, first.stderr.read() if first.stderr else ""
    ended_at = time.monotonic()
    check_index(settings, embedder, None)
    # How long each kind of run lasts from each starting point, updated as runs finish.
    durations = {
        (command, anchor): ended_at - (locked_at if anchor == "lock" else writing_at)
        for command in ("rebuild", "sync")
        for anchor in ("lock", "write")
    }

    landed = attempts = 0
    next_number = len(numbers)
    while landed < KILLS:
        attempts += 1
        assert attempts <= 3 * KILLS, f"only {landed} of {attempts} kills landed"
        command = rng.choice(["rebuild", "sync"])
        if command == "sync" or rng.random() < 0.5:  # give the writer work to do
            for number in rng.sample(numbers, 3):
                write_corpus_article(corpus, number, version=attempts)
            gone = numbers.pop(rng.randrange(len(numbers)))
            (corpus / f"a{gone:03d}.txt").unlink()
            write_corpus_article(corpus, next_number)
            numbers.append(next_number)
            next_number += 1
        live_before = read_pointer(layout)
        builds_before = set(list_builds(layout))
        writer = run_index(settings, command, corpus)
        # Half the kills count from the lock (cleanup, reading, loading the model), half from
        # the new build's first write (copying, embedding, checking, switching, removing).
        anchor = "lock" if attempts % 2 else "write"
        if anchor == "lock":
            started = wait_for(functools.partial(holds_lock, layout, writer.pid), writer)
        else:
            started = wait_for(functools.partial(writing, layout, builds_before), writer)
        began = time.monotonic()
        try:
            writer.wait(timeout=rng.uniform(0, durations[command, anchor]) if started else 0)
            if started:  # it finished first: aim within its real length next time
                durations[command, anchor] = time.monotonic() - began
        except subprocess.TimeoutExpired:
            os.kill(writer.pid, signal.SIGKILL)
            landed += 1
        code = writer.wait(timeout=600)
        stderr = writer.stderr.read().decode() if writer.stderr else ""
        assert code in (0, -signal.SIGKILL), stderr
        print(f"{attempts}: {command}, from the {anchor}: {'killed' if code else 'finished'}")
        check_index(settings, embedder, None)
        if code == 0:  # a finished rebuild published a new build
            assert command == "sync" or read_pointer(layout) != live_before

    # A rerun completes, leaves one build, and the index holds exactly the corpus.
    final = run_index(settings, "sync", corpus)
    assert final.wait(timeout=600) == 0, final.stderr.read() if final.stderr else ""
    expected = {a.id for a in load_sources([corpus]).articles}
    check_index(settings, embedder, expected)
    assert list_builds(layout) == builds_in_use(layout)
    print(f"{landed} kills in {attempts} runs, every one survived")

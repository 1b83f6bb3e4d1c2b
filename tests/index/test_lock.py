"""One writer at a time, no stale locks, and readers that keep answering while a writer works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.fingerprint import fingerprint_for
from index.lock import writer_lock
from index.reader import open_store
from tests.conftest import ROOT
from tests.index.conftest import layout_of, write_article
from tests.support.commands import run_cli


def test_a_second_writer_fails_and_names_the_first(tmp_path: Path, small_corpus: Path) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx")
    with writer_lock(layout_of(settings)):
        result = run_cli(
            "--index-dir", str(settings.index_dir), "sync", "--source", str(small_corpus)
        )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Another process is writing the index at")
    assert f"pid {os.getpid()} (`" in result.stderr  # the holder's pid, command and start
    assert ", since 20" in result.stderr
    assert "Wait for it to finish" in result.stderr
    assert "Embedding" not in result.stderr  # it gave up before loading the model


def test_the_lock_of_a_killed_writer_does_not_block(tmp_path: Path) -> None:
    layout = layout_of(IndexSettings(index_dir=tmp_path / "idx"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from index.layout import IndexLayout\n"
            "from index.lock import writer_lock\n"
            "with writer_lock(IndexLayout(Path(sys.argv[1]), 'articles')):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(layout.index_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert f'"pid": {holder.pid}' in layout.holder_path.read_text(encoding="utf-8")
    with writer_lock(layout, wait_s=0.1):  # no stale lock: taken at once
        assert f'"pid": {os.getpid()}' in layout.holder_path.read_text(encoding="utf-8")


def test_readers_keep_answering_during_a_rebuild_and_then_see_it(
    tmp_path: Path, small_corpus: Path, embedder: Embedder
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx")
    sync_index(settings, embedder, small_corpus)
    store = open_store(settings.index_dir, settings.collection)
    store.check(fingerprint_for(settings, embedder))
    keyword = store.keyword_index()
    question = embedder.embed_query("Which harbour reopened after the storm?")
    errors: list[BaseException] = []
    answers: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                answers.append(store.query(question, 1)[0].chunk.title)
                keyword.search("harbour storm", 3)
            except BaseException as e:  # every failure counts
                errors.append(e)
                return
            done.wait(0.02)

    write_article(
        small_corpus,
        "tram.txt",
        "Tram line to the airport opens",
        "The new tram line to the airport opened with free rides for a week.",
    )
    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = run_cli(
            "--index-dir", str(settings.index_dir), "rebuild", "--source", str(small_corpus)
        )
    finally:
        done.set()
        reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert errors == []
    assert len(answers) > 10
    assert set(answers) == {"Lindholm harbour reopens after the storm"}
    tram = store.query(embedder.embed_query("tram to the airport"), 1)[0].chunk
    assert tram.title == "Tram line to the airport opens"
    assert [h.article_id for h in keyword.search("tram airport", 1)] == [tram.article_id]
    assert store.stats().articles == 6
    store.close()

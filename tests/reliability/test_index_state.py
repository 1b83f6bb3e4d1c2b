"""The index against a model of what it should hold: a hypothesis state machine adds, edits and
deletes articles (plain-text files and records with ids in a .jsonl file), syncs, rebuilds and
reopens a real Chroma index in a temporary folder with the real embedding model, and after every
step checks the live index, a long-lived reader, the report and the folder against the model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from index.build import rebuild_index, sync_index
from index.config import IndexSettings
from index.embeddings import Embedder
from index.errors import CiteqaIndexError
from index.fingerprint import fingerprint_for
from index.layout import IndexLayout, list_builds, read_pointer
from index.plan import IndexReport
from index.reader import Store, open_store
from tests.conftest import ReliabilityRow, examples
from tests.index.conftest import builds_in_use

WORDS = (
    "harbour bridge council market school railway festival museum budget hospital factory "
    "vineyard glacier stadium library airport orchestra drought harvest ferry tunnel mayor "
    "engineers farmers nurses miners sailors pilots judges voters opened closed approved delayed"
).split()
TEXT_FILES = ("alpha.txt", "beta.txt", "gamma.txt", "delta.md")
RECORD_IDS = ("wire-1", "wire-2", "wire-3")
RECORDS_FILE = "wire.jsonl"
STEPS = {"steps": 0, "syncs": 0, "rebuilds": 0, "reopens": 0}

words = st.lists(st.sampled_from(WORDS), min_size=3, max_size=10)


class IndexMachine(RuleBasedStateMachine):
    """Articles on disk, and what the index should hold: the corpus at the last sync/rebuild."""

    embedder: ClassVar[Embedder]

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="citeqa-state-"))
        self.corpus = self.root / "corpus"
        self.corpus.mkdir()
        self.settings = IndexSettings(index_dir=self.root / "idx")
        self.layout = IndexLayout(self.settings.index_dir, self.settings.collection)
        self.files: dict[str, tuple[str, str]] = {}  # file name -> (title, text)
        self.records: dict[str, tuple[str, str]] = {}  # record id -> (title, text)
        # The line of each record: a new id takes the first free line, often one a removed id
        # had (see `test_a_new_id_on_the_line_of_a_removed_one_is_added_not_updated`);
        # `move_record` gives an id a new line at the end.
        self.lines: dict[str, int] = {}
        self.indexed: dict[str, tuple[str, str]] | None = None  # key -> (title, text)
        self.reader: Store | None = None
        self.serial = 0

    # ---- the corpus ----

    def fresh(self, chosen: list[str]) -> tuple[str, str]:
        """A title and text no other article has (a serial word), so none is a duplicate."""
        self.serial += 1
        token = f"zq{self.serial}x"
        return f"Report {token}", f"The {' '.join(chosen)} story {token} ended well."

    def corpus_now(self) -> dict[str, tuple[str, str]]:
        return {**self.files, **{f"record:{k}": v for k, v in self.records.items()}}

    def write_records(self) -> None:
        path = self.corpus / RECORDS_FILE
        if not self.records:
            path.unlink(missing_ok=True)
            return
        lines = [""] * max(self.lines.values())  # blank lines are skipped, and counted
        for key, (title, text) in self.records.items():
            record = {"id": key, "title": title, "text": text, "source": "Wire"}
            lines[self.lines[key] - 1] = json.dumps(record)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def free_line(self) -> int:
        taken = set(self.lines.values())
        return next(line for line in range(1, len(taken) + 2) if line not in taken)

    def next_line(self) -> int:
        self.serial += 1
        return self.serial

    @rule(name=st.sampled_from(TEXT_FILES), chosen=words)
    def write_file(self, name: str, chosen: list[str]) -> None:
        """Add a file, or edit it in place (its id, a hash of the content, changes)."""
        STEPS["steps"] += 1
        self.files[name] = self.fresh(chosen)
        title, text = self.files[name]
        (self.corpus / name).write_text(f"{title}\n\n{text}\n", encoding="utf-8")

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete_file(self, data: st.DataObject) -> None:
        STEPS["steps"] += 1
        name = data.draw(st.sampled_from(sorted(self.files)))
        del self.files[name]
        (self.corpus / name).unlink()

    @rule(key=st.sampled_from(RECORD_IDS), chosen=words)
    def write_record(self, key: str, chosen: list[str]) -> None:
        """Add a record, or change it under the same id."""
        STEPS["steps"] += 1
        self.records[key] = self.fresh(chosen)
        self.lines.setdefault(key, self.free_line())
        self.write_records()

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def move_record(self, data: st.DataObject) -> None:
        """Move a record to the end of the file: the same id and content on another line."""
        STEPS["steps"] += 1
        self.lines[data.draw(st.sampled_from(sorted(self.records)))] = self.next_line()
        self.write_records()

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def delete_record(self, data: st.DataObject) -> None:
        STEPS["steps"] += 1
        key = data.draw(st.sampled_from(sorted(self.records)))
        del self.records[key]
        del self.lines[key]
        self.write_records()

    # ---- the index ----

    def expect_report(self, report: IndexReport, expected: dict[str, tuple[str, str]]) -> None:
        before = self.indexed or {}
        assert len(report.added) == len(expected.keys() - before.keys())
        assert len(report.removed) == len(before.keys() - expected.keys())
        common = expected.keys() & before.keys()
        assert len(report.updated) == sum(expected[k] != before[k] for k in common)
        assert len(report.unchanged) == sum(expected[k] == before[k] for k in common)
        assert report.inputs == len(expected)
        assert report.rejected == ()
        assert report.duplicates == ()

    @rule()
    def sync(self) -> None:
        STEPS["steps"] += 1
        STEPS["syncs"] += 1
        expected = self.corpus_now()
        if not expected:
            self.expect_refusal(lambda: sync_index(self.settings, self.embedder, self.corpus))
            return
        live = read_pointer(self.layout)
        report = sync_index(self.settings, self.embedder, self.corpus)
        self.expect_report(report, expected)
        assert report.published == (expected != self.indexed)
        if not report.published:
            assert report.build_id == live == read_pointer(self.layout)
            assert report.chunks_embedded == 0
        self.indexed = expected

    @rule()
    def rebuild(self) -> None:
        STEPS["steps"] += 1
        STEPS["rebuilds"] += 1
        expected = self.corpus_now()
        if not expected:
            self.expect_refusal(lambda: rebuild_index(self.settings, self.embedder, self.corpus))
            return
        live = read_pointer(self.layout)
        store, report = rebuild_index(self.settings, self.embedder, self.corpus)
        store.close()
        self.expect_report(report, expected)
        assert report.published
        assert report.build_id != live
        assert report.chunks_copied == 0
        self.indexed = expected

    def expect_refusal(self, write: object) -> None:
        """With nothing to read, a writer refuses and the index stays as it was."""
        live = read_pointer(self.layout)
        with pytest.raises(CiteqaIndexError, match="No articles could be read"):
            write()  # type: ignore[operator]
        assert read_pointer(self.layout) == live

    @precondition(lambda self: self.indexed is not None)
    @rule()
    def reopen(self) -> None:
        """A reader starts (again), as the web app does after a restart."""
        STEPS["steps"] += 1
        STEPS["reopens"] += 1
        if self.reader is not None:
            self.reader.close()
        self.reader = open_store(self.settings.index_dir, self.settings.collection)
        self.reader.check(fingerprint_for(self.settings, self.embedder))
        self.reader.keyword_index()

    # ---- after every step ----

    @invariant()
    def index_matches_the_model(self) -> None:
        if self.indexed is None:
            assert read_pointer(self.layout) is None
            return
        live = read_pointer(self.layout)
        # Nothing unfinished or replaced is left: only the live build and those it reads.
        assert list_builds(self.layout) == builds_in_use(self.layout)
        assert live in list_builds(self.layout)
        store = self.reader or open_store(self.settings.index_dir, self.settings.collection)
        try:
            store.refresh()  # a long-lived reader follows each new build
            assert store.build_id == live
            manifest = store.manifest
            assert len(manifest.articles) == len(self.indexed)
            chunks = store.get([c for e in manifest.articles.values() for c in e.chunk_ids])
            assert len(chunks) == store.count() == manifest.chunks
            assert {c.title for c, _ in chunks.values()} == {t for t, _ in self.indexed.values()}
            keyword = store.keyword_index()
            assert len(keyword) == store.count()
            ids = {c.title: c.article_id for c, _ in chunks.values()}
            for title, text in self.indexed.values():  # each article is found by its own words
                assert keyword.search(title.split()[-1], 1)[0].article_id == ids[title]
                hit = store.query(self.embedder.embed_query(text), 1)[0]
                assert hit.chunk.title == title
        finally:
            if store is not self.reader:
                store.close()

    def teardown(self) -> None:
        if self.reader is not None:
            self.reader.close()
        shutil.rmtree(self.root, ignore_errors=True)


def test_the_index_follows_adds_edits_deletes_syncs_and_rebuilds(
    embedder: Embedder, reliability: list[ReliabilityRow]
) -> None:
    IndexMachine.embedder = embedder
    STEPS.update(dict.fromkeys(STEPS, 0))
    steps = 12 if examples(1) == 1 else 30
    # A few short runs can draw no sync or no rebuild at all (1 time in 13 here): run again then,
    # up to 5 times, so that the checks below fail only when those steps cannot be reached.
    for _ in range(5):
        run_state_machine_as_test(
            IndexMachine, settings=settings(max_examples=examples(4), stateful_step_count=steps)
        )
        if STEPS["syncs"] and STEPS["rebuilds"]:
            break
    assert STEPS["syncs"] > 0
    assert STEPS["rebuilds"] > 0
    reliability.append(
        ReliabilityRow(
            part="index state machine",
            inputs=STEPS["steps"],
            note=(
                f"{STEPS['syncs']} syncs, {STEPS['rebuilds']} rebuilds, "
                f"{STEPS['reopens']} reopens; checked after every step"
            ),
        )
    )


def test_a_new_id_on_the_line_of_a_removed_one_is_added_not_updated(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Found by the state machine: records with ids of their own are matched by id only
    (docs/reliability.md: matching by origin is for ids made from the content)."""
    settings = IndexSettings(index_dir=tmp_path / "idx")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    wire = corpus / "wire.jsonl"
    record = {"title": "Glacier survey", "text": "Drones mapped the glacier.", "source": "W"}
    wire.write_text(json.dumps({"id": "wire-3", **record}) + "\n", encoding="utf-8")
    sync_index(settings, embedder, corpus)
    other = {"title": "Chess olympiad", "text": "The chess olympiad opened.", "source": "W"}
    wire.write_text(json.dumps({"id": "wire-2", **other}) + "\n", encoding="utf-8")
    report = sync_index(settings, embedder, corpus)
    assert report.added == ("wire-2",)
    assert report.removed == ("wire-3",)
    assert report.updated == ()

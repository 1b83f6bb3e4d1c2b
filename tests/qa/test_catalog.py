"""The page's view of the index and its uploads, with real Chroma and the real embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.build import rebuild_index
from index.embeddings import Embedder
from index.errors import IndexBusyError
from index.layout import IndexLayout
from index.lock import writer_lock
from index.reader import open_store
from qa.catalog import (
    add_articles,
    check_origins,
    check_url,
    example_questions,
    file_name,
    index_status,
    inside,
    is_loopback_host,
    question_from_title,
    upload_folder,
)
from qa.config import Settings
from qa.errors import UploadError
from qa.retrieval import PassageRetriever
from tests.conftest import SAMPLE_ARTICLES, XINHUA_TITLE, make_settings

ARTICLE = (
    "# Ferry timetable changes in winter\n\nThe Tollhaven ferry will sail four times a day "
    "from November, the harbour master Ines Caldwell said on Monday, down from six in summer.\n"
)


@pytest.fixture
def library(
    corpus_dir: Path, tmp_path: Path, embedder: Embedder
) -> tuple[Settings, PassageRetriever]:
    settings = make_settings(tmp_path / "index", articles_dir=corpus_dir, llm_backend="extractive")
    rebuild_index(settings, embedder, corpus_dir)
    store = open_store(settings.index_dir, settings.collection)
    retriever = PassageRetriever(embedder=embedder, store=store, keyword=store.keyword_index())
    return settings, retriever


def test_added_file_is_saved_in_the_upload_folder_and_indexed(
    library: tuple[Settings, PassageRetriever], tmp_path: Path
) -> None:
    settings, retriever = library
    upload = tmp_path / "ferry notes.md"
    upload.write_text(ARTICLE, encoding="utf-8")
    steps: list[str] = []
    result = add_articles(settings, retriever, [upload], [], lambda s, d, t: steps.append(s))
    assert result.report is not None
    assert len(result.report.added) == 1
    assert len(result.report.unchanged) == 2
    assert result.saved == (file_name("ferry notes.md", ARTICLE.encode()),)
    assert result.saved[0].startswith("ferry-notes-")
    assert (upload_folder(settings) / result.saved[0]).read_text(encoding="utf-8") == ARTICLE
    assert steps[0] == "Reading articles"
    hits = retriever.search("How often will the Tollhaven ferry sail in winter?").passages
    assert hits[0].chunk.title == "Ferry timetable changes in winter"
    again = add_articles(settings, retriever, [upload], [])  # the same file twice: one article
    assert again.report is not None
    assert again.report.published is False
    assert index_status(retriever.store).articles == 3


def test_files_that_cannot_be_indexed_are_refused_and_not_kept(
    library: tuple[Settings, PassageRetriever], tmp_path: Path
) -> None:
    settings, retriever = library
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "scan.txt"
    binary.write_bytes(b"\xff\xfe\x00not utf-8 \xc3")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    result = add_articles(settings, retriever, [empty, binary, exe], [])
    reasons = {Path(r.origin).name.split("-")[0]: r.reason for r in result.rejected}
    assert reasons["empty.txt"] == "the file is empty"
    assert reasons["tool.exe"].startswith("unsupported file type .exe")
    assert "not UTF-8" in reasons["scan"]
    assert result.saved == ()
    assert list(upload_folder(settings).iterdir()) == []
    assert index_status(retriever.store).articles == 2


def test_a_failed_sync_removes_what_it_saved_and_keeps_the_index(
    library: tuple[Settings, PassageRetriever], tmp_path: Path
) -> None:
    settings, retriever = library
    build = retriever.store.build_id
    upload = tmp_path / "ferry.md"
    upload.write_text(ARTICLE, encoding="utf-8")
    with (
        writer_lock(IndexLayout(settings.index_dir, settings.collection)),
        pytest.raises(IndexBusyError, match="Another process is writing the index"),
    ):
        add_articles(settings, retriever, [upload], [])
    assert list(upload_folder(settings).iterdir()) == []
    retriever.store.refresh(force=True)
    assert retriever.store.build_id == build


def test_uploads_are_refused_when_the_index_holds_articles_from_elsewhere(
    sample_index: Path, tmp_path: Path
) -> None:
    manifest = open_store(sample_index, "articles").manifest
    check_origins(manifest, SAMPLE_ARTICLES)  # built from that folder: fine
    with pytest.raises(UploadError, match="11 article\\(s\\) read from outside"):
        check_origins(manifest, tmp_path)
    assert not (tmp_path / "uploads").exists()


def test_origins_inside_the_articles_folder(tmp_path: Path) -> None:
    assert inside(str(tmp_path / "a" / "x.txt"), tmp_path)
    assert inside(f"{tmp_path / 'set.jsonl'}:12", tmp_path)
    assert inside(f"{tmp_path / 'list.json'}#2", tmp_path)
    assert not inside(str(tmp_path.parent / "x.txt"), tmp_path)
    assert not inside("https://example.org/story.html", tmp_path)
    assert not inside("", tmp_path)


def test_urls_to_private_addresses_are_refused_when_exposed() -> None:
    assert check_url("http://127.0.0.1:8000/story.html", allow_private=True) is None
    for url in [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://[::1]/",
    ]:
        reason = check_url(url, allow_private=False)
        assert reason is not None
        assert "local or private address" in reason
    assert check_url("http://93.184.215.14/story.html", allow_private=False) is None
    assert check_url("ftp://example.org/x", allow_private=True) == "not an http(s) URL"
    assert check_url("javascript:alert(1)", allow_private=True) == "not an http(s) URL"


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("localhost")
    assert is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0")
    assert not is_loopback_host("192.168.1.20")


def test_upload_file_names_are_safe_and_follow_the_content() -> None:
    name = file_name('../../etc/<img src=x onerror="a">.MD', b"x")
    assert name.endswith(".md")
    assert "/" not in name
    assert "<" not in name
    assert '"' not in name
    assert file_name(".hidden.txt", b"x").startswith("hidden-")
    assert file_name("a.txt", b"x") == file_name("a.txt", b"x")
    assert file_name("a.txt", b"x") != file_name("a.txt", b"y")


def test_example_questions_come_from_the_newest_articles(sample_index: Path) -> None:
    store = open_store(sample_index, "articles")
    questions = example_questions(store, 3)
    assert len(questions) == 3
    assert questions[0] == f"What does “{XINHUA_TITLE[:60].rsplit(' ', 1)[0]}…” report?"
    assert all(q.startswith("What do the articles say about ") for q in questions[1:])


def test_questions_from_titles() -> None:
    assert question_from_title("Super Bowl 50") == "What do the articles say about Super Bowl 50?"
    assert question_from_title("Quarry reopens after flood") == (
        "What does “Quarry reopens after flood” report?"
    )
    assert question_from_title("  ") is None

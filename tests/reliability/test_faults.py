"""Faults: a full disk during a write, a read-only index, missing or tampered model files, and a
language model that is down, slow or returns garbage. Each ends with the previous index working
or a clear error, and the chat keeps answering (with the extractive fallback and a notice).

Real Chroma in temporary folders, the real embedding model, real `python -m index` processes,
real llama.cpp model files, and a real HTTP server on loopback that misbehaves on purpose.
"""

from __future__ import annotations

import ctypes
import hashlib
import http.server
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app
from index.build import sync_index
from index.config import IndexSettings
from index.embeddings import Embedder, open_embedder, packaged_model_path
from index.errors import IndexWriteError, ModelNotFoundError
from index.fingerprint import fingerprint_for
from index.layout import list_builds, read_pointer
from index.reader import open_store
from qa import Answer, QAChain
from qa import models as qa_models
from qa.chain import build_retriever
from qa.errors import ModelFileError
from qa.llm import open_llm
from qa.retrieval import PassageRetriever
from tests.conftest import ROOT, XINHUA_TITLE, ReliabilityRow, make_settings
from tests.index.conftest import builds_in_use, layout_of, write_article
from tests.support.servers import closed_port

# What the tests of this module injected, for the summary row (see `test_fault_summary`).
FAULTS: Counter[str] = Counter()

ARTICLES = {
    "harbour.txt": ("Lindholm harbour reopens", "The harbour of Lindholm reopened after repairs."),
    "zeppelin.txt": ("Zeppelin museum grows", "The zeppelin museum counted twice the visitors."),
    "orchard.txt": ("Cider orchards bloom early", "Cider orchards in Herefordshire bloomed early."),
}
NEW_ARTICLES = {
    f"extra{i}.txt": (f"Glacier survey {i}", f"Drones mapped glacier number {i} near Zurich.")
    for i in range(12)
}


def write_corpus(folder: Path, articles: dict[str, tuple[str, str]]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, (title, text) in articles.items():
        write_article(folder, name, title, text)
    return folder


def indexed_titles(settings: IndexSettings, embedder: Embedder) -> set[str]:
    """Open the index as a reader does, check it, answer a question, and list its titles."""
    store = open_store(settings.index_dir, settings.collection)
    try:
        store.check(fingerprint_for(settings, embedder))
        assert len(store.keyword_index()) == store.count() > 0
        hit = store.query(embedder.embed_query("Which harbour reopened?"), 1)[0]
        assert hit.chunk.title == "Lindholm harbour reopens"
        chunks = store.get([c for e in store.manifest.articles.values() for c in e.chunk_ids])
        return {chunk.title for chunk, _ in chunks.values()}
    finally:
        store.close()


def cli(*args: str, preexec: Callable[[], None] | None = None, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
        env={**os.environ, **env},
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def assert_clear_error(code: int, stderr: str, expected: str) -> None:
    """Exit code 1 with one `Error: ...` line saying what to do, never a traceback."""
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert expected in error, stderr


# ---- a full disk ----


class FileSizeLimit:
    """Files written by this process may not grow past `limit` bytes while this is held (the
    limit a full disk sets; Python ignores SIGXFSZ, so writes fail with EFBIG)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.saved = resource.getrlimit(resource.RLIMIT_FSIZE)

    def __enter__(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.saved[1]))

    def __exit__(self, *exc: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, self.saved)


# Limits that stop a write at each step: creating the Chroma database, adding the vectors,
# the vector index files, the keyword index and build record.
DISK_LIMITS = (2_000, 60_000, 150_000, 190_000)


def test_a_full_disk_during_a_write_keeps_the_live_index(
    tmp_path: Path, embedder: Embedder, reliability: list[ReliabilityRow]
) -> None:
    settings = IndexSettings(index_dir=tmp_path / "idx")
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    first = sync_index(settings, embedder, corpus)
    before = indexed_titles(settings, embedder)
    write_corpus(corpus, NEW_ARTICLES)
    for limit in DISK_LIMITS:
        FAULTS["disk full"] += 1
        with pytest.raises(IndexWriteError) as failed, FileSizeLimit(limit):
            sync_index(settings, embedder, corpus)
        assert "the live index is unchanged" in str(failed.value)
        assert read_pointer(layout_of(settings)) == first.build_id
        assert indexed_titles(settings, embedder) == before
        assert list_builds(layout_of(settings)) == [first.build_id]  # nothing half-written left

    # The command line says so in one line, and the next sync with room completes.
    FAULTS["disk full"] += 1
    limited = cli(
        "-m", "index", "--index-dir", str(settings.index_dir), "sync", "--source", str(corpus),
        "--quiet", preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000)),
    )  # fmt: skip
    assert_clear_error(*finished(limited), "Check that there is free disk space")
    assert indexed_titles(settings, embedder) == before
    report = sync_index(settings, embedder, corpus)
    assert report.published
    assert len(report.added) == len(NEW_ARTICLES)
    titles = {title for title, _ in [*ARTICLES.values(), *NEW_ARTICLES.values()]}
    assert indexed_titles(settings, embedder) == titles
    assert report.layers == 1  # the new articles only, over the first build
    assert list_builds(layout_of(settings)) == builds_in_use(layout_of(settings))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system of its own (tmpfs), where it may be mounted; skipped elsewhere."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "citeqa-test", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all the free space of `disk` but `leave` bytes."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    info = os.statvfs(disk)
    size = max(0, info.f_bavail * info.f_frsize - leave)
    with filler.open("wb") as out:
        written = 0
        block = b"\0" * (1 << 16)
        try:
            while written < size:
                written += out.write(block[: min(len(block), size - written)])
        except OSError:
            pass
    return filler


def titles_or_refusal(settings: IndexSettings, embedder: Embedder) -> set[str] | str:
    try:
        return indexed_titles(settings, embedder)
    except IndexWriteError as e:
        return str(e)


def test_a_full_file_system_keeps_the_live_index(
    small_disk: Path, tmp_path: Path, embedder: Embedder
) -> None:
    settings = IndexSettings(index_dir=small_disk / "idx")
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    first = sync_index(settings, embedder, corpus)
    before = indexed_titles(settings, embedder)
    reader = open_store(settings.index_dir, settings.collection)  # the chat app, running
    question = embedder.embed_query("Which harbour reopened?")
    write_corpus(corpus, NEW_ARTICLES)
    try:
        for leave in (0, 8_192, 65_536, 200_000, 300_000):
            FAULTS["disk full"] += 1
            filler = fill(small_disk, leave)
            with pytest.raises(IndexWriteError, match="the live index is unchanged"):
                sync_index(settings, embedder, corpus)
            assert read_pointer(layout_of(settings)) == first.build_id
            assert reader.query(question, 1)[0].chunk.title == "Lindholm harbour reopens"
            # Chroma writes as it opens a build: a reader starting now may be refused, clearly.
            opened = titles_or_refusal(settings, embedder)
            assert opened == before or "Free some disk space" in str(opened)
            filler.unlink()
            assert indexed_titles(settings, embedder) == before
            assert list_builds(layout_of(settings)) == [first.build_id]
        report = sync_index(settings, embedder, corpus)
        assert len(report.added) == len(NEW_ARTICLES)
        assert len(indexed_titles(settings, embedder)) == len(ARTICLES) + len(NEW_ARTICLES)
        assert reader.query(question, 1)[0].chunk.title == "Lindholm harbour reopens"
        assert reader.build_id == report.build_id
    finally:
        reader.close()


# ---- a read-only index ----

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def without_override() -> None:
    """In a child process: as root, give up the right to write where permissions forbid it."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def make_read_only(root: Path, writable: bool = False) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


def can_make_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    make_read_only(probe)
    code = subprocess.run(
        [sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
        preexec_fn=without_override,
        capture_output=True,
    ).returncode
    make_read_only(probe, writable=True)
    return code != 0


def test_a_read_only_index_is_a_clear_error_and_stays_as_it_was(
    tmp_path: Path, embedder: Embedder
) -> None:
    if not can_make_read_only(tmp_path):
        pytest.skip("this user can write to read-only folders")
    settings = IndexSettings(index_dir=tmp_path / "idx")
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    first = sync_index(settings, embedder, corpus)
    before = indexed_titles(settings, embedder)
    write_corpus(corpus, NEW_ARTICLES)
    index_dir = str(settings.index_dir)
    make_read_only(settings.index_dir)
    try:
        writers = [
            cli("-m", "index", "--index-dir", index_dir, command, "--source", str(corpus),
                "--quiet", preexec=without_override)
            for command in ("sync", "rebuild")
        ]  # fmt: skip
        reader = cli("-m", "index", "--index-dir", index_dir, "stats", preexec=without_override)
        chat = cli(
            "-m", "qa", "ask", "Which harbour reopened?", preexec=without_override,
            CITEQA_INDEX_DIR=index_dir, CITEQA_LLM_BACKEND="extractive",
        )  # fmt: skip
        for writer in writers:
            FAULTS["read-only"] += 1
            assert_clear_error(*finished(writer), "make the folder writable")
        for process in (reader, chat):
            FAULTS["read-only"] += 1
            assert_clear_error(*finished(process), "make the index folder writable")
    finally:
        make_read_only(settings.index_dir, writable=True)
    assert read_pointer(layout_of(settings)) == first.build_id
    assert indexed_titles(settings, embedder) == before
    assert sync_index(settings, embedder, corpus).published


# ---- missing and damaged model files ----


@pytest.fixture
def small_qwen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The default model's assembly and hash check, run on three small parts of known hash."""
    parts = []
    for number in range(3):
        part = tmp_path / "parts" / f"part{number:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(bytes([number]) * 4096 + os.urandom(100))
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(qa_models, "qwen_part_paths", lambda: parts)
    monkeypatch.setattr(qa_models, "QWEN_SIZE", len(whole))
    monkeypatch.setattr(qa_models, "QWEN_SHA256", hashlib.sha256(whole).hexdigest())
    return parts


def genuine(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == qa_models.QWEN_SHA256


def flip_byte_keeping_mtime(path: Path) -> None:
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_tampered_or_truncated_default_model_is_never_used(
    tmp_path: Path, small_qwen: list[Path]
) -> None:
    cache = tmp_path / "cache"
    target = qa_models.assemble_qwen(cache)
    assert genuine(target)
    damages: dict[str, Callable[[Path], object]] = {
        "a byte changed, modification time kept": flip_byte_keeping_mtime,
        "truncated": lambda p: os.truncate(p, p.stat().st_size // 2),
        "emptied": lambda p: p.write_bytes(b""),
        "removed": lambda p: p.unlink(),
        "stamp removed": lambda p: qa_models.verified_stamp(p).unlink(),
    }
    for damage in damages.values():
        FAULTS["model file"] += 1
        damage(target)
        assert qa_models.assemble_qwen(cache) == target
        assert genuine(target)  # checked again and re-assembled from the genuine parts
    # A damaged part: refused, and no file is left to be used later.
    FAULTS["model file"] += 1
    flip_byte_keeping_mtime(small_qwen[1])
    target.unlink()
    with pytest.raises(ModelFileError, match="not the genuine file"):
        qa_models.assemble_qwen(cache)
    assert not target.exists()
    assert [p.name for p in cache.iterdir() if p.suffix == ".gguf"] == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_local_model_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    FAULTS["model file"] += 1
    source = qa_models.smollm2_path()
    broken = tmp_path / "broken.gguf"
    if damage == "truncated":
        with source.open("rb") as whole:
            broken.write_bytes(whole.read(source.stat().st_size // 3))
    else:
        broken.write_bytes(os.urandom(1 << 16) if damage == "garbage" else b"")
    settings = make_settings(tmp_path / "idx", llm_model=str(broken))
    with pytest.raises(ModelFileError, match=r"Cannot load the language model .*broken\.gguf"):
        open_llm(settings)


def copy_embedding_model(tmp_path: Path) -> Path:
    target = tmp_path / "minilm"
    shutil.copytree(packaged_model_path(), target)
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: shutil.rmtree(m), "No embedding model at"),
        (lambda m: (m / "model.safetensors").unlink(), "no file named model.safetensors"),
        (lambda m: (m / "config.json").unlink(), "Cannot load the embedding model"),
        (lambda m: (m / "config.json").write_text("{not json"), "not a valid JSON file"),
    ],
    ids=["folder missing", "weights missing", "config missing", "config damaged"],
)
def test_a_missing_embedding_model_file_is_a_clear_error(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    FAULTS["model file"] += 1
    model = copy_embedding_model(tmp_path)
    damage(model)
    with pytest.raises(ModelNotFoundError, match=message):
        open_embedder(model)


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: os.truncate(m / "model.safetensors", 1000),
        lambda m: shutil.rmtree(m / "1_Pooling"),
    ],
    ids=["weights truncated", "pooling missing"],
)
def test_a_damaged_embedding_model_is_a_clear_error(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    model = copy_embedding_model(tmp_path)
    damage(model)
    with pytest.raises(ModelNotFoundError, match="Cannot load the embedding model"):
        open_embedder(model)


def test_the_command_line_names_a_missing_embedding_model(tmp_path: Path) -> None:
    FAULTS["model file"] += 1
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    process = cli(
        "-m", "index", "--index-dir", str(tmp_path / "idx"), "rebuild", "--source", str(corpus),
        CITEQA_EMBEDDING_MODEL_PATH=str(tmp_path / "absent"),
    )  # fmt: skip
    assert_clear_error(*finished(process), "CITEQA_EMBEDDING_MODEL_PATH")
    assert not list_builds(layout_of(IndexSettings(index_dir=tmp_path / "idx")))


# ---- a language model server that is slow or returns garbage ----

QUESTION = "Who is Wang Lei?"


def sse(content: str | None, *, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that misbehaves as the first path segment says."""

    protocol_version = "HTTP/1.1"
    stop: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        mode = self.path.strip("/").split("/")[0]
        getattr(self, f"mode_{mode}")()

    def reply(self, status: int, body: bytes, kind: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def stream(self, *events: bytes) -> None:
        self.reply(200, b"".join(events), "text/event-stream")

    def mode_silent(self) -> None:  # says nothing for longer than the timeout
        self.stop.wait(5)

    def mode_drip(self) -> None:  # one word at a time, slower in all than the timeout
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(40):
            if self.stop.wait(0.2):
                return
            event = sse("Wang ")
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()

    def mode_error(self) -> None:
        self.reply(500, b"<html><body>Internal Server Error</body></html>", "text/html")

    def mode_html(self) -> None:
        self.reply(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")

    def mode_notjson(self) -> None:
        self.stream(b"data: {this is not json\n\n", DONE)

    def mode_binary(self) -> None:
        self.stream(b"data: " + bytes(range(256)) * 4 + b"\n\n")

    def mode_cut(self) -> None:  # the connection drops in the middle of the answer
        body = sse("Wang Lei is", role=True)
        self.reply(200, body, "text/event-stream", length=len(body) + 500)
        self.close_connection = True

    def mode_empty(self) -> None:
        self.stream(sse("", role=True), sse(None, finish="stop"), DONE)

    def mode_schema(self) -> None:  # JSON, but not a chat completion chunk
        self.stream(b'data: {"choices": "none", "error": null}\n\n', DONE)

    def mode_nonsense(self) -> None:
        words = "Zorp blax quux [1]. Fnord wibble [9] [42]. \u202e\u0000\ufffd snark [0]."
        self.stream(sse(words, role=True), sse(None, finish="stop"), DONE)


@pytest.fixture(scope="module")
def misbehaving_server() -> Iterator[str]:
    stop = threading.Event()
    handler = type("Handler", (Misbehaving,), {"stop": stop})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def retriever(sample_index: Path) -> Iterator[PassageRetriever]:
    loaded = build_retriever(make_settings(sample_index))
    yield loaded
    loaded.store.close()


def chain_on(retriever: PassageRetriever, url: str) -> QAChain:
    """The chain on `retriever` with the `openai` backend at `url`, timing out after 1 s."""
    settings = make_settings(
        Path("unused"), llm_backend="openai", openai_base_url=url, llm_timeout_s=1.0
    )
    return QAChain(retriever, open_llm(settings), settings)


FAILING_MODES = ["silent", "drip", "error", "html", "notjson", "binary", "cut", "empty", "schema"]
LLM_RUNS: Counter[str] = Counter()
LLM_MS: list[float] = []


def ask_streamed(chain: QAChain, question: str) -> tuple[str, Answer]:
    started = time.perf_counter()
    events = list(chain.events(question))
    LLM_MS.append((time.perf_counter() - started) * 1000)
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert all(isinstance(e, str) for e in events[:-1])
    return "".join(e for e in events[:-1] if isinstance(e, str)), answer


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")  # the garbage
@pytest.mark.parametrize("mode", FAILING_MODES)
def test_a_misbehaving_server_gives_the_extractive_answer_with_a_notice(
    retriever: PassageRetriever, misbehaving_server: str, mode: str
) -> None:
    LLM_RUNS[mode] += 1
    chain = chain_on(retriever, f"{misbehaving_server}/{mode}/v1")
    streamed, answer = ask_streamed(chain, QUESTION)
    assert answer.backend == "extractive"
    assert answer.notice is not None
    if mode == "drip":  # it kept writing: cut off at the timeout
        assert "took longer than 1 s" in answer.notice
    assert answer.covered
    assert answer.text.startswith('"Wang Lei')
    assert answer.citations[0].title == XINHUA_TITLE
    assert '"Wang Lei' in streamed  # the fallback is streamed too


def test_a_server_writing_nonsense_never_passes_it_off_as_an_answer(
    retriever: PassageRetriever, misbehaving_server: str
) -> None:
    LLM_RUNS["nonsense"] += 1
    chain = chain_on(retriever, f"{misbehaving_server}/nonsense/v1")
    _, answer = ask_streamed(chain, QUESTION)
    assert not answer.covered  # no sentence of it is backed by a passage
    assert answer.citations == ()
    assert answer.backend == "openai"


# ---- the chat page while the model and the index fail ----


def ask_page(client: Client, question: str) -> str:
    result = client.predict(question, False, [], None, None, api_name="/ask")
    return str(result[0][-1]["content"])


@pytest.mark.server
def test_the_chat_page_keeps_answering_through_model_and_index_faults(
    tmp_path: Path,
    embedder: Embedder,
    misbehaving_server: str,
    reliability: list[ReliabilityRow],
) -> None:
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    settings = make_settings(
        tmp_path / "idx",
        articles_dir=corpus,
        llm_backend="openai",
        openai_base_url=f"http://127.0.0.1:{closed_port()}/v1",  # down
        llm_timeout_s=1.0,
    )
    sync_index(settings, embedder, corpus)
    base = build_retriever(settings)
    chain = QAChain(base, open_llm(settings), settings)
    demo = app.create_demo(chain)
    url = app.launch_demo(demo, settings, port=None, block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        LLM_RUNS["down (page)"] += 1
        shown = ask_page(client, "Which harbour reopened after repairs?")
        assert "Lindholm" in shown
        assert "failed" in shown

        # A build published with a damaged database: a clear message, not a crash.
        FAULTS["damaged live build"] += 1
        layout = layout_of(settings)
        write_corpus(corpus, {"tram.txt": ("Tram line opens", "A tram line to the airport.")})
        report = sync_index(settings, embedder, corpus)
        database = layout.chroma_dir(report.build_id) / "chroma.sqlite3"
        database.write_bytes(database.read_bytes()[:4096])
        with pytest.raises(AppError, match="Rebuild the index with: python -m index rebuild"):
            ask_page(client, "Which harbour reopened after repairs?")

        # The next rebuild is picked up without a restart.
        from index.build import rebuild_index

        rebuild_index(settings, embedder, corpus)[0].close()
        shown = ask_page(client, "Which tram line opened?")
        assert "Tram line opens" in shown or "tram" in shown.lower()
    finally:
        demo.close()
        base.store.close()


def test_fault_summary(reliability: list[ReliabilityRow]) -> None:
    """The summary rows of this module (its tests above ran first, in file order)."""
    assert FAULTS or LLM_RUNS, "run the whole module to get its summary"
    reliability.append(
        ReliabilityRow(
            part="disk full / read-only / tampered model",
            faults=sum(FAULTS.values()),
            note=", ".join(f"{kind}: {count}" for kind, count in sorted(FAULTS.items())),
        )
    )
    ordered = sorted(LLM_MS)
    reliability.append(
        ReliabilityRow(
            part="LLM down / slow / garbage",
            inputs=sum(LLM_RUNS.values()),
            faults=sum(LLM_RUNS.values()),
            p95_ms=ordered[int(0.95 * (len(ordered) - 1))] if ordered else None,
            note=", ".join(sorted(LLM_RUNS)),
        )
    )

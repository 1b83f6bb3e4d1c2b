"""The model runs in a worker process that citeqa starts, watches and restarts: a kill -9, a
native crash, a hang and a model file that crashes llama.cpp each cost one answer, which becomes
the extractive answer with a notice saying what happened, and the next question gets a fresh
worker. Real llama.cpp with the small SmolLM2 model, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa import Answer, QAChain, Settings, build_chain
from qa.chain import build_retriever
from qa.errors import ModelFileError, ModelWorkerError
from qa.llm import LocalChatModel, message_dicts, open_chat_model
from qa.models import smollm2_path
from qa.prompt import fixed_messages
from qa.retrieval import PassageRetriever
from qa.supervisor import Supervisor, WorkerConfig, describe_exit
from qa.threads import LoadMeter, read_busy_seconds, threads_for
from tests.conftest import make_settings

QUESTION = "What does Wang Lei coordinate?"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a cat named Tom who lives in Paris."},
]
WANG_LEI = "Wang Lei is coordinator for cyber and digital affairs at China's foreign ministry."
PARAMS = {"max_tokens": 48, "temperature": 0.0, "top_k": 1, "repeat_penalty": 1.0}

pytestmark = pytest.mark.model  # every test here runs SmolLM2 in a worker process


def smol_supervisor(
    timeout_s: float = 20.0, model: Path | None = None, state_dir: Path | None = None
) -> Supervisor:
    return Supervisor(
        WorkerConfig(
            model_path=model or smollm2_path(),
            context_tokens=1024,
            max_threads=2,
            first_token_timeout_s=timeout_s,
            state_dir=state_dir,
        )
    )


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    keeper = smol_supervisor()
    try:
        yield keeper
    finally:
        keeper.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def written(supervisor: Supervisor) -> str:
    """A whole answer from the worker."""
    return "".join(supervisor.chat(MESSAGES, PARAMS))


def answer_then(supervisor: Supervisor, act: signal.Signals) -> str:
    """Start an answer, send the worker `act` after its first piece; the error it ends with."""
    pid = supervisor.start().pid
    pieces = supervisor.chat(MESSAGES, PARAMS)
    first = next(pieces)
    assert first
    os.kill(pid, act)
    with pytest.raises(ModelWorkerError) as raised:
        for _ in pieces:
            pass
    return str(raised.value)


def test_answers_stream_from_a_worker_process_with_its_prefix_kept(
    supervisor: Supervisor,
) -> None:
    info = supervisor.start()
    assert info.pid != os.getpid()
    assert alive(info.pid)
    assert "AMX_INT8 = 1" not in info.system_info
    text = "".join(supervisor.chat(MESSAGES, PARAMS))
    assert "tom" in text.lower()
    assert "".join(supervisor.chat(MESSAGES, PARAMS)) == text  # greedy: the same again
    assert supervisor.pid == info.pid
    assert supervisor.restarts == 0
    assert (supervisor.count_tokens("Wang Lei coordinates cyber affairs.") or 0) > 3


def test_the_prompt_start_is_kept_on_disk_and_read_by_the_next_worker(tmp_path: Path) -> None:
    fixed = message_dicts(fixed_messages())
    asked = [*fixed, {"role": "user", "content": f"Passages:\n\n[1] {WANG_LEI}\n\n{QUESTION}"}]
    check = {**PARAMS, "max_tokens": 2}
    states = tmp_path / "states"

    def start_and_answer(state_dir: Path) -> tuple[str | None, str]:
        """A fresh worker's start-up check (what it did with the kept state), then an answer."""
        keeper = smol_supervisor(state_dir=state_dir)
        try:
            "".join(keeper.chat(fixed, check, keep=True))
            return keeper.prefix, "".join(keeper.chat(asked, PARAMS))
        finally:
            keeper.close()

    first, answer = start_and_answer(states)
    assert first == "written"
    [state] = states.glob("*.state")
    assert start_and_answer(states) == ("read", answer)  # greedy: the same words
    damaged = bytearray(state.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    state.write_bytes(bytes(damaged))
    assert start_and_answer(states) == ("written", answer)  # not read, written again
    assert start_and_answer(states) == ("read", answer)
    # A worker started after a crash reads it too.
    keeper = smol_supervisor(state_dir=states)
    try:
        "".join(keeper.chat(fixed, check, keep=True))
        pid = keeper.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, left for citeqa to reap
        assert "".join(keeper.chat(asked, PARAMS)) == answer
        assert (keeper.restarts, keeper.prefix) == (1, "read")
    finally:
        keeper.close()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert start_and_answer(blocked / "states") == (None, answer)  # nowhere to keep it


def test_kill_9_mid_answer_is_reported_and_the_next_answer_gets_a_fresh_worker(
    supervisor: Supervisor,
) -> None:
    old = supervisor.start().pid
    message = answer_then(supervisor, signal.SIGKILL)
    assert "was killed (SIGKILL" in message
    assert "fresh one starts for the next question" in message
    assert not alive(old)
    assert len(written(supervisor)) > 40
    assert supervisor.pid not in (None, old)
    assert supervisor.restarts == 1


def test_a_worker_killed_while_idle_costs_no_answer_even_before_it_is_seen_gone(
    supervisor: Supervisor,
) -> None:
    """The question comes while the idle worker is being killed: it is still running when
    citeqa looks, takes no question (stopped, then killed), and the question goes to a fresh one."""
    answer = written(supervisor)
    old = supervisor.pid
    assert old is not None
    os.kill(old, signal.SIGSTOP)  # alive to `poll()`, but it will never read the question
    killer = threading.Timer(1.0, os.kill, (old, signal.SIGKILL))
    killer.start()
    try:
        assert written(supervisor) == answer  # greedy: the same words, from a fresh worker
    finally:
        killer.cancel()
    assert not alive(old)
    assert supervisor.pid not in (None, old)
    assert supervisor.restarts == 1


def test_a_native_crash_mid_answer_is_reported_as_a_crash(supervisor: Supervisor) -> None:
    message = answer_then(supervisor, signal.SIGSEGV)
    assert "crashed (SIGSEGV in the model's native code)" in message
    assert len(written(supervisor)) > 40


def test_a_hung_worker_is_stopped_at_the_timeout() -> None:
    keeper = smol_supervisor(timeout_s=2.0)
    try:
        pid = keeper.start().pid
        os.kill(pid, signal.SIGSTOP)  # frozen: no piece ever comes
        started = time.monotonic()
        with pytest.raises(ModelWorkerError, match=r"gave no sign of the first words .* 2 s"):
            list(keeper.chat(MESSAGES, PARAMS))
        assert time.monotonic() - started < 10
        assert not alive(pid)
        assert len(written(keeper)) > 40
    finally:
        keeper.close()


def test_an_answer_left_unread_is_cancelled_and_the_worker_kept(supervisor: Supervisor) -> None:
    pid = supervisor.start().pid
    pieces = supervisor.chat(MESSAGES, PARAMS)
    next(pieces)
    pieces.close()  # the caller stopped reading (a timeout, a closed page)
    assert len(written(supervisor)) > 40
    assert supervisor.pid == pid
    assert supervisor.restarts == 0


def test_the_worker_ends_when_citeqa_does(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from qa.models import smollm2_path\n"
        "from qa.supervisor import Supervisor, WorkerConfig\n"
        "s = Supervisor(WorkerConfig(smollm2_path(), 512, 1, 10.0))\n"
        "print(s.start().pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_a_model_file_that_crashes_llama_cpp_costs_answers_not_the_caller(
    tmp_path: Path, sample_index: Path
) -> None:
    """The model file is cut short under the running worker (a copy being replaced, a disk
    error): llama.cpp reads its weights through mmap and dies of SIGBUS at the next question.
    That answer and the next (the damaged file no longer loads) are extractive, with notices."""
    model = tmp_path / "small.gguf"
    shutil.copy(smollm2_path(), model)
    chain = build_chain(make_settings(sample_index, llm_model=str(model), max_answer_tokens=32))
    assert isinstance(chain.llm, LocalChatModel)
    try:
        assert chain.invoke(QUESTION).backend == "local"
        os.truncate(model, model.stat().st_size // 10)
        crashed = chain.invoke("Who is Wang Lei?")
        assert crashed.backend == "extractive"
        assert crashed.notice is not None
        assert "crashed (SIGBUS in the model's native code)" in crashed.notice
        assert crashed.covered
        assert crashed.citations
        refused = chain.invoke("Who is Wang Lei?")
        assert refused.backend == "extractive"
        assert refused.notice is not None
        assert "Cannot load the language model" in refused.notice
    finally:
        chain.llm.close()


def test_a_model_that_fails_its_start_up_check_leaves_extractive_answers_with_the_reason(
    sample_index: Path,
) -> None:
    # No first token within a millisecond: the check fails as it would for a model that hangs
    # or crashes at its first prompt.
    chain = build_chain(make_settings(sample_index, llm_model="smollm2-135m", llm_timeout_s=0.001))
    assert chain.llm is None
    assert chain.model_problem is not None
    assert chain.model_problem.startswith("The language model could not start: ")
    assert "gave no sign of the first words" in chain.model_problem
    answer = chain.invoke("Who is Wang Lei?")
    assert answer.backend == "extractive"
    assert answer.covered
    assert answer.citations
    assert answer.notice == chain.model_problem


def test_a_file_that_is_no_model_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a GGUF model file"):
        open_chat_model(fake, context_tokens=512, threads=1, max_tokens=8, temperature=0.0)


@pytest.fixture(scope="module")
def retriever(sample_index: Path) -> Iterator[PassageRetriever]:
    loaded = build_retriever(make_settings(sample_index))
    yield loaded
    loaded.store.close()


def smol_chain_on(retriever: PassageRetriever, **overrides: object) -> QAChain:
    settings: Settings = make_settings(
        Path("unused"), llm_model="smollm2-135m", max_answer_tokens=64, **overrides
    )
    return build_chain(settings, retriever)


def test_the_chain_answers_through_a_killed_worker_and_then_from_the_model(
    retriever: PassageRetriever,
) -> None:
    chain = smol_chain_on(retriever)
    assert isinstance(chain.llm, LocalChatModel)
    keeper = chain.llm.supervisor
    try:
        old = keeper.start().pid
        events = chain.events(QUESTION)
        for event in events:
            if isinstance(event, str):  # the model has started writing
                os.kill(old, signal.SIGKILL)
                break
        answer = list(events)[-1]
        assert isinstance(answer, Answer)
        assert answer.backend == "extractive"
        assert answer.notice is not None
        assert "was killed (SIGKILL" in answer.notice
        assert answer.covered
        assert "Wang Lei" in answer.text
        again = chain.invoke(QUESTION)
        assert again.backend == "local"
        assert again.notice is None
        assert keeper.pid not in (None, old)
    finally:
        keeper.close()


def test_exit_descriptions() -> None:
    assert describe_exit(-9).startswith("was killed (SIGKILL: out of memory")
    assert describe_exit(-11) == "crashed (SIGSEGV in the model's native code)"
    assert describe_exit(-6) == "crashed (SIGABRT in the model's native code)"
    assert describe_exit(3) == "exited with status 3"


# ---- threads on a busy machine ----


def test_threads_follow_the_cores_other_work_leaves_free() -> None:
    assert threads_for(0.0, 2, 2) == 2
    assert threads_for(0.2, 2, 2) == 2
    assert threads_for(0.3, 2, 2) == 1  # a core more than a quarter busy is taken
    assert threads_for(2.0, 2, 2) == 1  # never fewer than one
    assert threads_for(1.0, 8, 4) == 4  # never more than the setting


@pytest.mark.skipif(read_busy_seconds() is None, reason="reads /proc/stat")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a second core to leave free")
def test_the_meter_sees_a_busy_process_niced_or_not() -> None:
    cores = os.cpu_count() or 2

    def measured(command: list[str]) -> int:
        meter = LoadMeter()
        busy = subprocess.Popen(command)
        try:
            meter.start()
            time.sleep(1.5)
            return meter.threads(cores)
        finally:
            meter.stop()
            busy.kill()
            busy.wait()

    spin = [sys.executable, "-c", "while True: pass"]
    assert measured(spin) == cores - 1
    # Even at the lowest priority it takes a core: llama.cpp's threads wait for the one that
    # shares it at every barrier (docs/model-worker.md).
    assert measured(["nice", "-n", "19", *spin]) == cores - 1


def test_a_meter_between_samples_counts_nothing_busy() -> None:
    meter = LoadMeter(cores=2)
    assert meter.others_busy() == 0.0  # no samples yet: no evidence of load
    assert meter.threads(2) == 2


def test_the_worker_keeps_answering_while_another_thread_waits(supervisor: Supervisor) -> None:
    supervisor.start()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append("".join(supervisor.chat(MESSAGES, PARAMS))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    assert results[0] == results[1]


def test_a_relative_model_path_is_found_from_the_folder_it_was_given_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(smollm2_path(), tmp_path / "small.gguf")
    monkeypatch.chdir(tmp_path)
    keeper = smol_supervisor(model=Path("small.gguf"))
    try:
        assert len(written(keeper)) > 40
    finally:
        keeper.close()


def test_pruning_kept_states_skips_one_another_worker_deleted_meanwhile(tmp_path: Path) -> None:
    """A state listed but gone before it is looked at (a dangling link stands for one another
    worker deleted between the listing and the look) is not an error: the newest are kept."""
    from qa.worker import STATES_KEPT, PrefixStates

    for n in range(STATES_KEPT + 2):
        state = tmp_path / f"prefix-{n:02d}.state"
        state.write_bytes(b"state")
        state.with_suffix(".json").write_text("{}")
        os.utime(state, (1_000_000 + n, 1_000_000 + n))
    (tmp_path / "prefix-gone.state").symlink_to(tmp_path / "deleted-meanwhile")

    PrefixStates(tmp_path, []).prune()

    kept = sorted(p.name for p in tmp_path.glob("prefix-*.state") if p.exists())
    assert kept == [f"prefix-{n:02d}.state" for n in range(2, STATES_KEPT + 2)]
    assert not (tmp_path / "prefix-00.json").exists()

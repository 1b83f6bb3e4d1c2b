"""The model worker's keeper: starts the worker (`qa.worker`), talks to it, and restarts it.

The local model runs in a child process so that a native crash, an out-of-memory kill or a hang
in llama.cpp costs one answer, not the app or the Python caller. Every wait is bounded: the
model's load by `load_timeout_s`, the first piece of an answer by `first_token_timeout_s`, every
later piece by the same. A worker that died or hung is killed and reported as a
`ModelWorkerError` saying what happened; the next request starts a fresh one. A worker that
died while idle (killed between questions, as the out-of-memory killer does) but was not yet seen
to be gone when the next question came costs nothing: the worker says it took a question before
it starts on it, so one that never said so is replaced and the question given to a fresh one.
One request runs at a time (one model, one context); the prompt prefix stays cached in the worker
between them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from index.courtesy import clear_answering, mark_answering
from qa.errors import ModelFileError, ModelWorkerError
from qa.threads import LoadMeter

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5  # how often a running answer tells index jobs to wait
CANCEL_WAIT_S = 5.0  # for the worker to stop an answer it was told to cancel
STDERR_TAIL = 600  # characters of the worker's own error output quoted in a message


class WorkerGoneError(ModelWorkerError):
    """The worker's process ended (its pipe broke or closed)."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the worker loads and how long each step may take."""

    model_path: Path
    context_tokens: int
    max_threads: int
    first_token_timeout_s: float
    load_timeout_s: float = 120.0
    state_dir: Path | None = None  # where the state after the prompt's fixed start is kept


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a started worker reported: its process, load time and llama.cpp build."""

    pid: int
    load_s: float
    system_info: str


def worker_command(*args: str) -> list[str]:
    """The command that runs the worker: its file as a script, so the child imports llama.cpp
    and the standard library only, not the whole `qa` package (-P: its folder, which holds
    `qa/types.py`, does not go on the module path)."""
    return [sys.executable, "-P", str(Path(__file__).with_name("worker.py")), *args]


def describe_exit(code: int | None) -> str:
    """Plain words for how a worker process ended."""
    if code is None:
        return "stopped answering"
    if code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            return f"was killed ({name}: out of memory, or stopped by another program)"
        if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT, signal.SIGFPE):
            return f"crashed ({name} in the model's native code)"
        return f"was stopped by {name}"
    return f"exited with status {code}"


@dataclass
class Process:
    """One running worker: its process, the events it sends, what it printed to stderr."""

    popen: subprocess.Popen[bytes]
    stderr: IO[bytes]
    buffer: bytes = b""
    info: WorkerInfo | None = None

    def send(self, request: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        self.popen.stdin.flush()

    def event(self, deadline: float) -> dict[str, Any] | None:
        """The next event, or None at the deadline; `EOFError` when the worker has gone."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            data = os.read(fd, 65536)
            if not data:
                raise EOFError
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.stderr.seek(0)
            text = self.stderr.read().decode("utf-8", "replace").strip()
            return text[-STDERR_TAIL:]
        return ""

    def kill(self) -> int | None:
        """Kill the worker (if still running) and give its exit code."""
        with contextlib.suppress(OSError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        return self.popen.returncode


class Supervisor:
    """Starts, watches and restarts the model worker; thread-safe, one request at a time."""

    def __init__(self, config: WorkerConfig, meter: LoadMeter | None = None):
        self.config = config
        self.meter = meter or LoadMeter()
        self.restarts = 0  # workers replaced after a crash, a kill or a hang
        self.prefix: str | None = None  # what the last chat did with the kept state, if anything
        self._start: list[dict[str, str]] | None = None  # the fixed start of every prompt
        self._process: Process | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running worker's process id, if one runs."""
        process = self._process
        return process.popen.pid if process is not None else None

    def start(self) -> WorkerInfo:
        """Start the worker now (if none runs) and wait until its model is loaded."""
        with self._lock:
            info = self._ensure_started().info
        assert info is not None  # set when it said it was ready
        return info

    def close(self) -> None:
        """Stop the worker (it also stops by itself when this process ends)."""
        self.meter.stop()
        with self._lock:
            if self._process is not None:
                self._process.kill()
                self._process = None

    def chat(
        self, messages: list[dict[str, str]], params: dict[str, Any], keep: bool = False
    ) -> Generator[str, None, None]:
        """The answer's text pieces as the worker writes them. With `keep`, `messages` are the
        fixed start of every prompt: from then on a fresh worker (this one, or one started after
        a crash) reads the model's state after them from the state folder instead of reading
        them again, and this chat writes it there if none was read (`qa.worker`)."""
        timeout = self.config.first_token_timeout_s
        if not self._lock.acquire(timeout=timeout):
            raise ModelWorkerError(
                f"The language model was busy with another answer for {timeout:g} s."
            )
        try:
            if keep:
                self._start = messages
            chat = {
                "op": "chat",
                "messages": messages,
                "params": params,
                "threads": self.meter.threads(self.config.max_threads),
                "prefix": self._start,
            }
            process = self._hand_over(chat)
            finished = False
            waiting_for = "the first words of the answer"
            try:
                while True:
                    event = self._next(process, waiting_for, answering=True)
                    waiting_for = "the rest of the answer"
                    if event["event"] == "piece":
                        yield str(event["text"])
                    elif event["event"] == "done":
                        finished = True
                        self.prefix = event.get("prefix")
                        return
                    else:
                        finished = True
                        raise ModelWorkerError(
                            f"The model process could not answer: {event['message']}"
                        )
            finally:
                if not finished:  # the caller stopped reading: stop the worker's answer too
                    self._cancel(process)
        finally:
            clear_answering()
            self._lock.release()

    def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` for the model; None when no worker runs now (one that just failed
        is not restarted for this) or it cannot say."""
        with self._lock:
            process = self._process
            if process is None or process.popen.poll() is not None:
                return None
            try:
                self._request(process, {"op": "tokenize", "text": text})
                event = self._next(process, "a token count")
            except ModelWorkerError as e:
                log.warning("cannot count prompt tokens: %s", e)
                return None
        return int(event["count"]) if event.get("event") == "tokens" else None

    def _hand_over(self, chat: dict[str, Any]) -> Process:
        """A worker that took `chat` (it said "accepted"). One that was gone before it did (died
        while idle, not yet reaped when this began) is replaced once and the chat sent again;
        one that dies after taking it costs this answer, as a chat may be what crashed it."""
        try:
            return self._take(self._ensure_started(), chat)
        except WorkerGoneError as e:
            log.warning("the model worker had gone before it took the question: %s", e)
        return self._take(self._ensure_started(), chat)

    def _take(self, process: Process, chat: dict[str, Any]) -> Process:
        self._request(process, chat)
        event = self._next(process, "the first words of the answer", answering=True)
        if event["event"] != "accepted":
            self._discard(process)
            raise ModelWorkerError(f"The model process answered {event!r} to a question.")
        return process

    def _ensure_started(self) -> Process:
        if self._process is not None and self._process.popen.poll() is None:
            return self._process
        if self._process is not None:  # died between requests
            self._process.kill()
            self._process = None
            self.restarts += 1
        process = self._spawn()
        deadline = time.monotonic() + self.config.load_timeout_s
        try:
            event = process.event(deadline)
        except EOFError:
            event = {"event": "gone"}
        if event is None or event.get("event") != "ready":
            code = process.kill()
            raise self._load_error(event, code, process.stderr_tail())
        process.info = WorkerInfo(int(event["pid"]), float(event["load_s"]), event["system_info"])
        self._process = process
        self.meter.exclude(process.popen.pid)
        self.meter.start()
        return process

    def _load_error(self, event: dict[str, Any] | None, code: int | None, tail: str) -> Exception:
        path = self.config.model_path
        if event is None:
            return ModelWorkerError(
                f"The language model {path} did not load within "
                f"{self.config.load_timeout_s:g} s; the model process was stopped."
            )
        if event.get("kind") == "load":
            return ModelFileError(f"Cannot load the language model {path}: {event['message']}")
        detail = f" Its last words: {tail}" if tail else ""
        return ModelWorkerError(
            f"The model process {describe_exit(code)} while loading {path}.{detail} "
            "Run `python -m qa doctor` to see why."
        )

    def _spawn(self) -> Process:
        config = {
            "model_path": str(self.config.model_path.absolute()),
            "context_tokens": self.config.context_tokens,
            "threads": self.config.max_threads,
            "state_dir": str(self.config.state_dir) if self.config.state_dir else None,
        }
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process)
        popen = subprocess.Popen(
            worker_command(json.dumps(config)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a Ctrl-C in the terminal reaches citeqa, which stops it
        )
        log.info("model worker %d started for %s", popen.pid, self.config.model_path)
        return Process(popen, stderr)

    def _request(self, process: Process, request: dict[str, Any]) -> None:
        """Send `request`; a worker that died since its last answer is reported."""
        try:
            process.send(request)
        except OSError:  # the pipe broke: it is gone
            raise self._died(process) from None

    def _next(self, process: Process, waiting_for: str, answering: bool = False) -> dict[str, Any]:
        """The worker's next event; a dead or silent worker is killed and reported. While
        `answering`, index jobs are told to wait (`index.courtesy`) every half second."""
        timeout = self.config.first_token_timeout_s
        deadline = time.monotonic() + timeout
        try:
            while True:
                if answering:
                    mark_answering()
                event = process.event(min(deadline, time.monotonic() + HEARTBEAT_S))
                if event is not None or time.monotonic() >= deadline:
                    break
        except EOFError:
            raise self._died(process) from None
        if event is None:
            self._discard(process)
            raise ModelWorkerError(
                f"The language model gave no sign of {waiting_for} within {timeout:g} s, so its "
                "process was stopped; a fresh one starts for the next question."
            )
        return event

    def _died(self, process: Process) -> WorkerGoneError:
        """The error for a worker that has gone, saying how it ended."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
        code = process.popen.returncode
        tail = process.stderr_tail()
        self._discard(process)
        detail = f" Its last words: {tail}" if tail else ""
        return WorkerGoneError(
            f"The model process {describe_exit(code)}; a fresh one starts for the next "
            f"question.{detail}"
        )

    def _cancel(self, process: Process) -> None:
        """Tell the worker to stop the answer, and wait for it; kill it if it does not."""
        if process is not self._process:
            return
        try:
            process.send({"op": "cancel"})
            deadline = time.monotonic() + CANCEL_WAIT_S
            while (event := process.event(deadline)) is not None:
                if event["event"] in ("done", "error"):
                    return
        except (EOFError, OSError, ValueError):
            pass
        self._discard(process)

    def _discard(self, process: Process) -> None:
        process.kill()
        if self._process is process:
            self._process = None
            self.restarts += 1

"""The model worker: the child process that runs llama.cpp, so that a crash stays in it.

`python -P qa/worker.py CONFIG_JSON` (`qa.supervisor.worker_command`) loads the GGUF model once,
then answers requests, one JSON object per line on standard input, with events, one JSON object
per line on the file descriptor that was standard output (llama.cpp's own prints go to standard
error instead):

    {"op": "chat", "messages": [...], "params": {...}, "threads": 2, "prefix": [...]}
        -> {"event": "accepted"} {"event": "piece", "text": "..."} ... {"event": "done", ...}
    {"op": "cancel"}   (while a chat streams) -> the chat ends with {"event": "done"}
    {"op": "tokenize", "text": "..."} -> {"event": "tokens", "count": 12}

At start it says {"event": "ready", ...} or {"event": "error", "kind": "load", ...} and exits.
A chat's `prefix` is the fixed start of every prompt: with a `state_dir` in the config, a fresh
worker reads the model's state after it from there instead of reading those messages again (5 s
of the 1.5B model's start on 2 cores), and when the chat is that prefix alone (the start-up
check) and no state was read, writes it there ("read" or "written" in `done`).
A request it cannot serve gets {"event": "error", "message": ...}. It exits when its standard
input closes, so it never outlives citeqa. The only module that imports llama.cpp; the parent's
side is `qa.supervisor`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

STATES_KEPT = 8  # prefix states in the state folder (a few models and prompt versions)


class Requests:
    """Lines from a file descriptor, readable without blocking (to notice a cancel mid-answer)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""
        self.closed = False

    def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next request, waiting up to `timeout` seconds (None: forever); None if none came."""
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(self.fd, 65536)
            if not data:
                self.closed = True
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        parsed: dict[str, Any] = json.loads(line)
        return parsed


class Worker:
    """The loaded model and the channel its events go out on."""

    def __init__(
        self, model: Any, out: BinaryIO, requests: Requests, states: PrefixStates | None = None
    ):
        self.model = model
        self.out = out
        self.requests = requests
        self.states = states

    def send(self, **event: Any) -> None:
        self.out.write(json.dumps(event).encode("utf-8") + b"\n")
        self.out.flush()

    def serve(self) -> None:
        """Answer requests until standard input closes."""
        while True:
            request = self.requests.next(None)
            if request is None:
                return
            try:
                self.handle(request)
            except Exception as e:  # a Python error in llama-cpp-python: this request only
                self.send(event="error", message=f"{type(e).__name__}: {e}")

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "chat":
            self.send(event="accepted")
            self.set_threads(int(request.get("threads") or 0))
            messages = request["messages"]
            start = request.get("prefix") if self.states is not None else None
            prefix = "read" if start and self.read_prefix(start) else None
            cancelled = False
            for text in self.chat(messages, request.get("params", {})):
                self.send(event="piece", text=text)
                if self.cancelled():
                    cancelled = True
                    break
            if start == messages and prefix is None and not cancelled and self.write_prefix(start):
                prefix = "written"
            self.send(event="done", cancelled=cancelled, prefix=prefix)
        elif op == "tokenize":
            tokens = self.model.tokenize(str(request["text"]).encode("utf-8"), add_bos=False)
            self.send(event="tokens", count=len(tokens))
        elif op != "cancel":  # a cancel that came after its answer ended
            self.send(event="error", message=f"unknown request {op!r}")

    def chat(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Iterator[str]:
        stream = self.model.create_chat_completion(messages=messages, stream=True, **params)
        for chunk in stream:
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                yield text

    def read_prefix(self, messages: list[dict[str, str]]) -> bool:
        """Restore the state kept for `messages` into a fresh model; False if there is none."""
        assert self.states is not None
        if self.model.n_tokens:
            return False
        try:
            tokens = self.states.read(self.model, messages)
        except Exception as e:  # a state of another build or a damaged file: read the prompt
            print(f"citeqa: prefix state not used: {e}", file=sys.stderr)
            tokens = None
        if tokens is None:
            self.model.reset()
            return False
        self.model.input_ids[: len(tokens)] = tokens
        self.model.n_tokens = len(tokens)
        # The restored state's last logits are not the model's own: the next prompt's tail is
        # evaluated again (llama-cpp-python's flag for a restored state).
        self.model._requires_eval = True
        return True

    def write_prefix(self, messages: list[dict[str, str]]) -> bool:
        """Keep the model's state after `messages` (and the check's few tokens) on disk."""
        assert self.states is not None
        try:
            self.states.write(self.model, messages)
        except OSError as e:  # a read-only or full disk: the prompt is read at each start
            print(f"citeqa: prefix state not kept: {e}", file=sys.stderr)
            return False
        return True

    def cancelled(self) -> bool:
        """True if a cancel (or the end of standard input) arrived while answering."""
        request = self.requests.next(0)
        if request is None:
            return self.requests.closed
        return request.get("op") == "cancel"

    def set_threads(self, threads: int) -> None:
        """Threads for reading the prompt and writing the answer, from now on."""
        if threads > 0:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self.model.ctx, threads, threads)


class PrefixStates:
    """The model's state after a prompt prefix, one file per model, build and prefix, with a
    JSON record of its SHA-256 beside it: a file that does not match is never loaded."""

    def __init__(self, folder: Path, identity: list[Any]):
        self.folder = folder
        self.identity = identity  # what a state depends on besides the messages

    def path(self, messages: list[dict[str, str]]) -> Path:
        key = json.dumps([self.identity, messages], sort_keys=True).encode("utf-8")
        return self.folder / f"prefix-{hashlib.sha256(key).hexdigest()[:32]}.state"

    def read(self, model: Any, messages: list[dict[str, str]]) -> list[int] | None:
        """The tokens whose state was restored into `model`, or None when none is kept."""
        import llama_cpp

        path = self.path(messages)
        try:
            record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            data = path.read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise ValueError(f"{path.name} does not match its record")
        capacity = model.n_ctx()
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        if not llama_cpp.llama_state_load_file(
            model.ctx, str(path).encode("utf-8"), tokens, capacity, ctypes.byref(count)
        ):
            raise ValueError(f"llama.cpp could not load {path.name}")
        if not 0 < count.value == int(record.get("tokens", -1)):
            raise ValueError(f"{path.name} holds {count.value} tokens, not its record's")
        with contextlib.suppress(OSError):  # recently used: kept longest (where writable)
            os.utime(path)
        return list(tokens[: count.value])

    def write(self, model: Any, messages: list[dict[str, str]]) -> None:
        """Write the state of `model`'s evaluated tokens as the state after `messages`."""
        import llama_cpp

        path = self.path(messages)
        self.folder.mkdir(parents=True, exist_ok=True)
        count = int(model.n_tokens)
        tokens = (llama_cpp.llama_token * count)(*model.input_ids[:count].tolist())
        partial = path.with_suffix(f".partial-{os.getpid()}")
        try:
            if not llama_cpp.llama_state_save_file(
                model.ctx, str(partial).encode("utf-8"), tokens, count
            ):
                raise OSError(f"llama.cpp could not write {partial}")
            record = {"sha256": hashlib.sha256(partial.read_bytes()).hexdigest(), "tokens": count}
            partial.replace(path)
            recorded = path.with_suffix(f".json-{os.getpid()}")
            recorded.write_text(json.dumps(record), encoding="utf-8")
            recorded.replace(path.with_suffix(".json"))
        finally:
            partial.unlink(missing_ok=True)
        self.prune()

    def prune(self) -> None:
        """Delete all but the `STATES_KEPT` most recently used states. Another worker may
        delete one meanwhile: what is gone is no longer counted, not an error."""
        used: list[tuple[float, Path]] = []
        for state in self.folder.glob("prefix-*.state"):
            with contextlib.suppress(FileNotFoundError):
                used.append((state.stat().st_mtime, state))
        states = [state for _, state in sorted(used)]
        for old in states[:-STATES_KEPT]:
            old.with_suffix(".json").unlink(missing_ok=True)
            old.unlink(missing_ok=True)


def prefix_states(config: dict[str, Any]) -> PrefixStates | None:
    """Where this worker keeps prefix states, keyed by the model file and the build that read
    it; None when the config names no folder."""
    if not config.get("state_dir"):
        return None
    import llama_cpp

    model = Path(config["model_path"])
    info = model.stat()
    identity = [
        str(model),
        info.st_size,
        info.st_mtime_ns,
        int(config["context_tokens"]),
        llama_cpp.__version__,
        system_info(),
    ]
    return PrefixStates(Path(config["state_dir"]), identity)


def load_model(config: dict[str, Any]) -> Any:
    """The llama.cpp model the config names, with the fixed load options."""
    import llama_cpp

    threads = int(config["threads"])
    return llama_cpp.Llama(
        model_path=str(config["model_path"]),
        n_ctx=int(config["context_tokens"]),
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        # 0 makes llama.cpp read the RoPE base and scale from the GGUF file (a fixed base of
        # 10000 garbles models such as Qwen2.5, whose base is 1e6).
        rope_freq_base=0.0,
        rope_freq_scale=0.0,
        seed=-1,
        use_mmap=True,
        verbose=False,
    )


def system_info() -> str:
    """What the llama.cpp build was compiled with (`AVX2 = 1 | AMX_INT8 = 0 | ...`)."""
    import llama_cpp

    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    """Load the model named by the JSON config in `argv[0]`, then serve requests."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--system-info"]:  # for `python -m qa doctor`: the build, no model
        print(system_info())
        return 0
    config = json.loads(args[0])
    # The events channel is the original standard output; anything llama.cpp prints from C goes
    # to standard error, so it can never break a line of the protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    started = time.perf_counter()
    try:
        model = load_model(config)
    except Exception as e:  # llama-cpp-python raises ValueError/RuntimeError for a bad file
        out.write(json.dumps({"event": "error", "kind": "load", "message": str(e)}).encode())
        out.write(b"\n")
        out.flush()
        return 3
    worker = Worker(model, out, Requests(0), prefix_states(config))
    worker.send(
        event="ready",
        pid=os.getpid(),
        load_s=round(time.perf_counter() - started, 3),
        system_info=system_info(),
    )
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

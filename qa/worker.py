"""The model worker: the child process that runs llama.cpp, so that a crash stays in it.

`python -P qa/worker.py CONFIG_JSON` (`qa.supervisor.worker_command`) loads the GGUF model once,
then answers requests, one JSON object per line on standard input, with events, one JSON object
per line on the file descriptor that was standard output (llama.cpp's own prints go to standard
error instead):

    {"op": "chat", "messages": [...], "params": {...}, "threads": 2}
        -> {"event": "piece", "text": "..."} ... {"event": "done"}
    {"op": "cancel"}   (while a chat streams) -> the chat ends with {"event": "done"}
    {"op": "tokenize", "text": "..."} -> {"event": "tokens", "count": 12}

At start it says {"event": "ready", ...} or {"event": "error", "kind": "load", ...} and exits.
A request it cannot serve gets {"event": "error", "message": ...}. It exits when its standard
input closes, so it never outlives citeqa. The only module that imports llama.cpp; the parent's
side is `qa.supervisor`.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO


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

    def __init__(self, model: Any, out: BinaryIO, requests: Requests):
        self.model = model
        self.out = out
        self.requests = requests

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
            self.set_threads(int(request.get("threads") or 0))
            cancelled = False
            for text in self.chat(request["messages"], request.get("params", {})):
                self.send(event="piece", text=text)
                if self.cancelled():
                    cancelled = True
                    break
            self.send(event="done", cancelled=cancelled)
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
    worker = Worker(model, out, Requests(0))
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

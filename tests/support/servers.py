"""Start `python app.py` (or any server) for a test, wait until it answers, stop it after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs

from index.offline import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """Ask `process` to end; kill it if it has not within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def closed_port() -> int:
    """A loopback port nothing listens on: a server that is down."""
    return free_port()


def user_env(**extra: str) -> dict[str, str]:
    """This environment as a new user has it: no CITEQA_* settings, offline, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    env.update(OFFLINE_ENV)
    env.update(extra)
    return env


def answers_http(port: int, path: str = "/gradio_api/info") -> bool:
    """True once the server on `port` answers GET `path` with 200."""
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class Served:
    """A server process started for a test, and where its output went."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text("utf-8", errors="replace")[-4000:]

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


@contextmanager
def serve_app(
    cwd: Path, env: Mapping[str, str], log: Path, timeout_s: float = 240.0
) -> Iterator[Served]:
    """`python app.py --port N` run from `cwd` with `env`, until the block ends."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}/", log)
    try:
        deadline = time.monotonic() + timeout_s
        while not answers_http(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app did not start:\n{served.log_tail()}")
            time.sleep(0.5)
        yield served
    finally:
        stop_process(process, timeout_s=30)

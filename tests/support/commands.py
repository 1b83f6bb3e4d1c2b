"""The command lines a test runs in a process of its own: `python -m qa`, `python -m index`, and
index writers started to be killed, with the polls that tell what a writer got to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from index.config import IndexSettings
from index.layout import IndexLayout, list_builds
from tests.support.servers import ROOT, user_env


def ask(
    *args: str, index_dir: Path, model: str = "smollm2-135m", options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`python -m qa [options] ask ARGS` over `index_dir`, with no CITEQA_* settings but these."""
    env = user_env(CITEQA_INDEX_DIR=str(index_dir), CITEQA_LLM_MODEL=model, CITEQA_LLM_THREADS="2")
    return subprocess.run(
        [sys.executable, "-m", "qa", *options, "ask", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m index ARGS`, with `env` added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "index", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_index(settings: IndexSettings, command: str, corpus: Path) -> subprocess.Popen[bytes]:
    """An index writer (`python -m index rebuild|sync`) running in the background."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "index",
            "--index-dir",
            str(settings.index_dir),
            command,
            "--source",
            str(corpus),
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float = 180
) -> bool:
    """Poll `condition` until it holds (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError("the writer neither got going nor ended")


def holds_lock(layout: IndexLayout, pid: int) -> bool:
    try:
        return f'"pid": {pid},' in layout.holder_path.read_text(encoding="utf-8")
    except OSError:
        return False


def writing(layout: IndexLayout, before: set[str]) -> bool:
    return bool(set(list_builds(layout)) - before)

"""The defaults as a user runs them: the CLIs and the app from a folder holding `articles/`, with
no `CITEQA_*` settings at all, so the index is the relative `.citeqa` and the default model
answers. (Every other test passes absolute folders; this one is what `make run` does.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client

from tests.support.servers import ROOT, serve_app, user_env

XINHUA_TITLE = "China offers opportunities for EU's digital development, says diplomat"

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.server]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new user's folder: the sample `articles/`, nothing else."""
    root = tmp_path_factory.mktemp("user")
    shutil.copytree(ROOT / "articles", root / "articles")
    return root


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=folder,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_index_cli_with_no_settings(folder: Path) -> None:
    built = run(folder, "index", "rebuild", "--quiet")
    assert "Index:      .citeqa (collection 'articles')" in built.stdout
    assert (folder / ".citeqa").is_dir()
    for _ in range(2):  # the second sync read the relative index path as a file URI and failed
        synced = run(folder, "index", "sync", "--quiet")
        assert "Unchanged:  11" in synced.stdout
        assert "unchanged, nothing written" in synced.stdout
    stats = run(folder, "index", "stats")
    assert ".citeqa" in stats.stdout


def test_ask_and_doctor_with_no_settings(folder: Path) -> None:
    if not (folder / ".citeqa").exists():
        run(folder, "index", "rebuild", "--quiet")
    asked = run(folder, "qa", "ask", "Who is Wang Lei?")
    assert "Wang Lei" in asked.stdout
    assert "[1]" in asked.stdout
    assert "Sources:" in asked.stdout
    assert f"[1] {XINHUA_TITLE} (Xinhua, 2024-03-19)" in asked.stdout
    doctor = run(folder, "qa", "doctor")
    assert "[ok ] llama.cpp build:" in doctor.stdout
    assert "[ok ] index: .citeqa: 11 articles" in doctor.stdout
    assert "[ok ] language model:" in doctor.stdout
    assert "All checks passed." in doctor.stdout


def test_the_app_with_no_settings_answers_through_gradio_client(folder: Path) -> None:
    if not (folder / ".citeqa").exists():
        run(folder, "index", "rebuild", "--quiet")
    with serve_app(folder, user_env(), folder / "app.log") as app:
        client = Client(app.url, verbose=False)
        result = client.predict("Who is Wang Lei?", False, [], None, None, api_name="/ask")
        shown = str(result[0][-1]["content"])
        assert "Wang Lei" in shown
        assert "cq-cite" in shown  # a clickable [n]
        assert "the local language model" in shown
        assert XINHUA_TITLE in str(result[2])  # the sources panel

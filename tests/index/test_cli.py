"""`python -m index rebuild|stats`: exit codes, summaries and error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "index", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_rebuild_then_stats(tmp_path: Path, corpus_dir: Path) -> None:
    (corpus_dir / "bad.json").write_text("{oops", encoding="utf-8")
    index_dir = tmp_path / "idx"
    built = run_cli(
        "--index-dir", str(index_dir), "rebuild", "--source", str(corpus_dir), "--quiet"
    )
    assert built.returncode == 0, built.stderr
    assert "Articles read:    2" in built.stdout
    assert "Articles rejected: 1" in built.stdout
    assert "bad.json: invalid JSON" in built.stdout
    assert "Chunks written:" in built.stdout

    again = run_cli("--index-dir", str(index_dir), "rebuild", "--if-missing")
    assert again.returncode == 0
    assert "already exists" in again.stdout

    stats = run_cli("--index-dir", str(index_dir), "stats")
    assert stats.returncode == 0, stats.stderr
    assert "Articles:         2" in stats.stdout
    assert "Xinhua: 1 article(s)" in stats.stdout


def test_stats_without_index_says_how_to_build_it(tmp_path: Path) -> None:
    result = run_cli("--index-dir", str(tmp_path / "none"), "stats")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: No index at")
    assert "python -m index rebuild" in result.stderr


def test_rebuild_from_missing_source_fails_clearly(tmp_path: Path) -> None:
    result = run_cli(
        "--index-dir", str(tmp_path / "idx"), "rebuild", "--source", str(tmp_path / "nope")
    )
    assert result.returncode == 1
    assert "Error: No articles could be read" in result.stderr
    assert "no such file or folder" in result.stderr


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    result = run_cli("--index-dir", str(tmp_path), "stats", CITEQA_CHUNK_TOKENS="9999")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Invalid setting: CITEQA_CHUNK_TOKENS:")
    assert "Fix or unset it." in result.stderr

"""`python -m qa ask`: exit codes, answers with sources, and errors that say what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def ask(
    *args: str, index_dir: Path, model: str = "smollm2-135m", options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    env.update(CITEQA_INDEX_DIR=str(index_dir), CITEQA_LLM_MODEL=model, CITEQA_LLM_THREADS="2")
    return subprocess.run(
        [sys.executable, "-m", "qa", *options, "ask", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_unrelated_question_prints_the_not_covered_answer(sample_index: Path) -> None:
    result = ask("What is the best recipe for banana bread?", index_dir=sample_index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The articles don't cover this."


def test_empty_question_is_an_error(sample_index: Path) -> None:
    result = ask("  ", index_dir=sample_index)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: Please type a question about the articles."


def test_missing_index_names_the_rebuild_command(tmp_path: Path) -> None:
    result = ask("Who is Wang Lei?", index_dir=tmp_path / "none")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: No index at")
    assert "python -m index rebuild" in result.stderr


def test_unknown_model_is_an_error(sample_index: Path) -> None:
    result = ask("Who is Wang Lei?", index_dir=sample_index, model="gpt-9")
    assert result.returncode == 1
    assert "Error: Unknown model 'gpt-9'" in result.stderr


def test_extractive_backend_prints_the_quote_and_the_span_that_backs_it(
    sample_index: Path,
) -> None:
    result = ask("Who is Wang Lei?", index_dir=sample_index, options=("--backend", "extractive"))
    assert result.returncode == 0, result.stderr
    answer, sources = result.stdout.split("\nSources:\n")
    assert answer.strip().startswith('"Wang Lei, coordinator for cyber and digital affairs')
    assert answer.strip().endswith("[1]")
    assert sources.startswith("[1] China offers opportunities")
    assert '"Wang Lei, coordinator' in sources

"""`python -m qa ask`: exit codes, answers with sources, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.commands import ask


@pytest.mark.model  # `ask` loads SmolLM2
def test_unrelated_question_prints_the_not_covered_answer(sample_index: Path) -> None:
    result = ask("What is the best recipe for banana bread?", index_dir=sample_index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "The articles don't cover this.",
        "",
        "Why: No indexed passage is close enough to this question.",
    ]


@pytest.mark.model
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


def test_as_of_reads_this_week_and_says_which_days_were_searched(sample_index: Path) -> None:
    options = ("--backend", "extractive")
    result = ask(
        "--as-of", "2024-03-20", "What happened this week?", index_dir=sample_index, options=options
    )
    assert result.returncode == 0, result.stderr
    assert "Searched articles published 2024-03-13 to 2024-03-20" in result.stdout
    assert "as of 2024-03-20" in result.stdout
    assert "\nSources:\n[1] China offers opportunities" in result.stdout
    bad = ask("--as-of", "next friday", "Who is Wang Lei?", index_dir=sample_index, options=options)
    assert bad.returncode == 1
    assert "YYYY-MM-DD" in bad.stderr

"""`python -m index rebuild|sync|stats`: exit codes, reports and error messages."""

from __future__ import annotations

from pathlib import Path

from tests.support.commands import run_cli


def report_lines(output: str) -> dict[str, str]:
    """`Added:      2` -> {"Added": "2"}, for the report's lines."""
    lines = (line.split(":", 1) for line in output.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in lines if not key.startswith(" ")}


def test_rebuild_sync_and_stats(tmp_path: Path, small_corpus: Path) -> None:
    (small_corpus / "bad.json").write_text("{oops", encoding="utf-8")
    index_dir = str(tmp_path / "idx")
    built = run_cli("--index-dir", index_dir, "rebuild", "--source", str(small_corpus), "--quiet")
    assert built.returncode == 0, built.stderr
    report = report_lines(built.stdout)
    assert report["Read"] == "6 input(s)"
    assert (report["Added"], report["Unchanged"], report["Rejected"]) == ("5", "0", "1")
    assert "bad.json: invalid JSON" in built.stdout
    assert report["Chunks"] == "5 in the index (5 embedded, 0 reused)"
    assert report["Build"].endswith("(now live)")

    again = run_cli("--index-dir", index_dir, "rebuild", "--if-missing")
    assert again.returncode == 0
    assert "already exists" in again.stdout

    (small_corpus / "orchard.txt").unlink()
    extra = tmp_path / "extra.txt"
    extra.write_text("Tram line opens\n\nThe new tram line to the airport opened.\n", "utf-8")
    synced = run_cli(
        "--index-dir", index_dir, "sync", "--source", str(small_corpus), "--source", str(extra)
    )
    assert synced.returncode == 0, synced.stderr
    report = report_lines(synced.stdout)
    assert (report["Added"], report["Unchanged"], report["Removed"]) == ("1", "4", "1")
    assert report["Chunks"] == "5 in the index (1 embedded, 4 reused)"
    assert "Embedding" in synced.stderr  # a progress bar for each long step
    assert "Copying unchanged" not in synced.stderr  # the 4 stay where they are
    assert report["Layers"] == (
        "0 reused chunk(s) copied into the build; the rest read from 1 earlier build(s)"
    )

    unchanged = run_cli(
        "--index-dir", index_dir, "sync", "--source", str(small_corpus), "--source", str(extra)
    )
    assert unchanged.returncode == 0, unchanged.stderr
    assert report_lines(unchanged.stdout)["Build"].endswith("(unchanged, nothing written)")

    stats = run_cli("--index-dir", index_dir, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "Articles:         5" in stats.stdout
    assert "Alpine Wire: 2 article(s)" in stats.stdout


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
    assert "the index is unchanged" in result.stderr


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    result = run_cli("--index-dir", str(tmp_path), "stats", CITEQA_CHUNK_TOKENS="9999")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Invalid setting: CITEQA_CHUNK_TOKENS:")
    assert "Fix or unset it." in result.stderr


def test_invalid_server_url_and_collection_are_named(tmp_path: Path) -> None:
    url = run_cli("--index-dir", str(tmp_path), "stats", CITEQA_CHROMA_URL="ftp://x")
    assert url.returncode == 1
    assert url.stderr.startswith("Error: Invalid setting: CITEQA_CHROMA_URL:")
    name = run_cli("--index-dir", str(tmp_path), "stats", CITEQA_COLLECTION="../up")
    assert name.returncode == 1
    assert name.stderr.startswith("Error: Invalid setting: CITEQA_COLLECTION:")

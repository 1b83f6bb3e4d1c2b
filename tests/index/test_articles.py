"""Loading articles from every supported format, and rejecting bad input with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.articles import load_articles, normalize_date, split_front_matter

NEWS_HTML = """<!doctype html><html><head><title>Port reopens after storm | Harbour Times</title>
<meta property="og:site_name" content="Harbour Times">
<meta name="date" content="2024-05-02"></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/weather">Weather menu item</a></li></ul></nav>
<article><h1>Port reopens after storm</h1>
<p>The port of Lindholm reopened on Thursday after a storm closed it for three days, the harbour
authority said. Ferries to the islands will run on the normal timetable from Friday morning.</p>
<p>Harbour master Ines Vogt said crews had cleared two sunken barges from the main channel and that
inspections found no damage to the quays. Cargo ships waiting offshore began docking at noon.</p>
</article>
<footer>Copyright Harbour Times. Subscribe to our newsletter.</footer></body></html>"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_text_file_with_front_matter(tmp_path: Path) -> None:
    write(
        tmp_path / "a.txt",
        "---\nsource: Xinhua\npublished: 2024-03-19\nurl: https://example.org/a\n---\n"
        "Talks held in Brussels\n\nBRUSSELS -- Officials met on Tuesday.\n",
    )
    (article,) = load_articles(tmp_path).articles
    assert article.title == "Talks held in Brussels"
    assert article.text == "BRUSSELS -- Officials met on Tuesday."
    assert (article.source, article.published, article.url) == (
        "Xinhua",
        "2024-03-19",
        "https://example.org/a",
    )


def test_markdown_title_and_date_from_file_name(tmp_path: Path) -> None:
    write(tmp_path / "story-2023-07-01.md", "# Heatwave hits Madrid\n\nTemperatures reached 40C.\n")
    (article,) = load_articles(tmp_path).articles
    assert article.title == "Heatwave hits Madrid"
    assert article.published == "2023-07-01"
    assert article.source is None


def test_html_main_text_without_menus(tmp_path: Path) -> None:
    write(tmp_path / "port.html", NEWS_HTML)
    result = load_articles(tmp_path)
    assert result.rejected == ()
    (article,) = result.articles
    assert "Port reopens after storm" in article.title
    assert "Ines Vogt" in article.text
    assert "Weather menu item" not in article.text
    assert "Subscribe to our newsletter" not in article.text
    assert article.published == "2024-05-02"


def test_jsonl_good_lines_loaded_bad_lines_rejected_with_line_numbers(tmp_path: Path) -> None:
    good = {"id": "x:1", "title": "One", "text": "First story.", "published": "2022-06-17"}
    lines = [json.dumps(good), "{not json", json.dumps({"title": "No text"}), ""]
    path = write(tmp_path / "set.jsonl", "\n".join(lines))
    result = load_articles(path)
    assert [a.id for a in result.articles] == ["x:1"]
    assert result.articles[0].published == "2022-06-17"
    assert [r.origin for r in result.rejected] == [f"{path}:2", f"{path}:3"]
    assert "invalid JSON" in result.rejected[0].reason
    assert "text" in result.rejected[1].reason


def test_unreadable_files_are_reported_and_the_rest_still_load(tmp_path: Path) -> None:
    write(tmp_path / "good.txt", "Good title\n\nGood body.")
    write(tmp_path / "latin1.txt", "Caf\xe9 title\n\nBody".encode("latin-1"))
    write(tmp_path / "empty.md", "   \n")
    write(tmp_path / "only-title.txt", "Just a title\n")
    write(tmp_path / "notes.docx", b"PK\x03\x04")
    write(tmp_path / "README.md", "# About this folder\n\nNot an article.")
    write(tmp_path / ".hidden.txt", "Hidden\n\nNot read.")
    result = load_articles(tmp_path)
    assert [a.title for a in result.articles] == ["Good title"]
    reasons = {Path(r.origin).name: r.reason for r in result.rejected}
    assert set(reasons) == {"latin1.txt", "empty.md", "only-title.txt", "notes.docx"}
    assert "not UTF-8" in reasons["latin1.txt"]
    assert "empty" in reasons["empty.md"]
    assert "no article text" in reasons["only-title.txt"]
    assert "unsupported file type .docx" in reasons["notes.docx"]


def test_missing_source_is_a_rejection(tmp_path: Path) -> None:
    result = load_articles(tmp_path / "nowhere")
    assert result.articles == ()
    assert result.rejected[0].reason == "no such file or folder"


def test_same_text_gives_same_content_id(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "Title\n\nBody text.")
    write(tmp_path / "b.txt", "Title\n\nBody text.")
    write(tmp_path / "c.txt", "Title\n\nOther text.")
    ids = [a.id for a in load_articles(tmp_path).articles]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-19", "2024-03-19"),
        ("2024-03-19T10:00:00Z", "2024-03-19"),
        ("", None),
        (None, None),
        ("March 2024", None),
    ],
)
def test_normalize_date(value: object, expected: str | None) -> None:
    assert normalize_date(value) == expected


def test_front_matter_must_be_key_value() -> None:
    with pytest.raises(ValueError, match="key: value"):
        split_front_matter("---\n- a list\n---\nTitle\n\nBody")
    assert split_front_matter("No front matter\n\nBody") == ({}, "No front matter\n\nBody")

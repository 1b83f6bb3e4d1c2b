"""Loading articles from every supported format, and rejecting bad input with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.formats import split_front_matter
from index.sources import load_articles
from index.types import normalize_date

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
    ids = [a.id for a in load_articles(tmp_path, dedup=False).articles]
    assert ids[0] == ids[1] != ids[2]
    result = load_articles(tmp_path)  # the exact copy is indexed once
    assert [a.id for a in result.articles] == [ids[0], ids[2]]
    assert [(Path(d.origin).name, d.kept_id, d.similarity) for d in result.duplicates] == [
        ("b.txt", ids[0], 1.0)
    ]


def test_every_input_is_counted_once_in_a_mixed_folder(tmp_path: Path) -> None:
    story = "Bridge reopens\n\n" + " ".join(
        f"Lane {n} of the bridge reopened today." for n in range(30)
    )
    write(tmp_path / "bridge.txt", story)
    write(tmp_path / "copies" / "bridge-again.md", story.replace("today", "on Monday", 1))
    write(tmp_path / "port.html", NEWS_HTML)
    write(tmp_path / "letter.pdf", make_pdf(["Letter to readers", "We print on paper."]))
    write(tmp_path / "scan.pdf", make_pdf([]))
    write(tmp_path / "set.jsonl", '{"title": "One", "text": "First."}\n{bad\n')
    write(tmp_path / "broken.json", "[1, 2")
    write(tmp_path / "latin1.txt", "Caf\xe9\n\nBody".encode("latin-1"))
    write(tmp_path / "notes.docx", b"PK\x03\x04")
    write(tmp_path / "empty.md", "")
    result = load_articles(tmp_path)
    assert len(result.articles) == 4  # bridge, port, letter, One
    assert len(result.duplicates) == 1
    assert len(result.rejected) == 6  # scan, line 2 of set.jsonl, broken, latin1, docx, empty
    assert all(r.reason for r in result.rejected)
    assert (
        result.inputs == 11 == len(result.articles) + len(result.rejected) + len(result.duplicates)
    )


def pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(lines: list[str], info: dict[str, str] | None = None) -> bytes:
    """A one-page PDF showing `lines` in Helvetica; no lines gives a page with only a drawing."""
    if lines:
        shown = " ".join(f"({pdf_escape(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 16 TL 72 720 Td {shown} ET"
    else:  # what a scanned page looks like to a text extractor: marks, no text
        stream = "0.5 g 72 600 200 100 re f"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< " + " ".join(f"/{k} ({pdf_escape(v)})" for k, v in (info or {}).items()) + " >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
    out += f"{trailer}startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_pdf_title_author_and_date_from_metadata(tmp_path: Path) -> None:
    info = {
        "Title": "Ferry timetable changes",
        "Author": "Per Lund",
        "CreationDate": "D:20240520093000Z",
    }
    lines = ["Ferry timetable changes", "The morning ferry leaves at 06:40 from June.", "Page two."]
    write(tmp_path / "ferry.pdf", make_pdf(lines, info))
    (article,) = load_articles(tmp_path).articles
    assert article.title == "Ferry timetable changes"
    assert article.text.startswith(
        "The morning ferry leaves at 06:40 from June."
    )  # no repeated title
    assert article.authors == ("Per Lund",)
    assert article.published == "2024-05-20"
    assert article.origin == str(tmp_path / "ferry.pdf")


def test_pdf_without_metadata_takes_its_first_line_and_the_date_in_its_name(tmp_path: Path) -> None:
    write(
        tmp_path / "notice-2024-06-01.pdf", make_pdf(["Water off on Elm Street", "From 9 to 12."])
    )
    (article,) = load_articles(tmp_path).articles
    assert (article.title, article.text, article.published) == (
        "Water off on Elm Street",
        "From 9 to 12.",
        "2024-06-01",
    )


def test_pdf_without_text_or_broken_is_rejected_with_the_reason(tmp_path: Path) -> None:
    write(tmp_path / "scan.pdf", make_pdf([]))
    write(tmp_path / "broken.pdf", b"%PDF-1.4\nnot really a PDF")
    result = load_articles(tmp_path)
    assert result.articles == ()
    reasons = {Path(r.origin).name: r.reason for r in result.rejected}
    assert "may be a scanned image" in reasons["scan.pdf"]
    assert reasons["broken.pdf"].startswith("not a readable PDF")


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

"""Near-duplicates: syndicated copies of one story are indexed once, different stories are not."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from index import dedup as dedup_module
from index.chunking import chunk_article
from index.dedup import (
    DEFAULT_THRESHOLD,
    SignatureCache,
    jaccard,
    merge_duplicates,
    normalize_words,
    shingle_set,
    source_label,
    strip_wire_boilerplate,
)
from index.records import chunk_from_record, chunk_metadata
from index.sources import load_articles, load_sources
from index.types import Article

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ingest"
WIRE = ("wire-harbour-times.html", "wire-coastal-courier.html", "wire-valley-gazette.md")
HARBOUR_TIMES = "Harbour Times <https://harbourtimes.example/2024/05/02/lindholm-port-reopens>"
COURIER = (
    "Coastal Courier <https://coastalcourier.example/news/storm-hit-lindholm-port-back-in-business>"
)
GAZETTE = "Valley Gazette <https://valleygazette.example/lindholm-port>"


def copy_fixtures(target: Path, *names: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, target / name)
    return target


def similarity(a: str, b: str) -> float:
    return jaccard(shingle_set(normalize_words(a)), shingle_set(normalize_words(b)))


def test_syndicated_copies_are_indexed_once_with_every_outlet_listed(tmp_path: Path) -> None:
    folder = copy_fixtures(tmp_path / "news", *WIRE, "dock-strike.html")
    result = load_articles(folder)
    assert result.rejected == ()
    assert sorted(a.title for a in result.articles) == [
        "Lindholm dock workers vote to strike over storm overtime",
        "Port of Lindholm reopens after three-day storm closure",
    ]
    (kept,) = [a for a in result.articles if a.title.startswith("Port of Lindholm")]
    # Harbour Times and Coastal Courier both say 2024-05-02; the Harbour Times text is longer.
    assert kept.source == "Harbour Times"
    assert kept.other_sources == (COURIER, GAZETTE)
    dropped = {Path(d.origin).name: d for d in result.duplicates}
    assert set(dropped) == {"wire-coastal-courier.html", "wire-valley-gazette.md"}
    assert {d.kept_id for d in dropped.values()} == {kept.id}
    assert all(DEFAULT_THRESHOLD <= d.similarity < 1.0 for d in dropped.values())
    assert result.inputs == 4


def test_different_stories_on_the_same_topic_stay_apart(tmp_path: Path) -> None:
    folder = copy_fixtures(tmp_path, "wire-harbour-times.html", "dock-strike.html")
    articles = load_articles(folder, dedup=False).articles
    # Same port, storm, harbour master and grain mills: still almost no 5-word runs in common.
    assert similarity(articles[0].text, articles[1].text) < 0.05
    result = load_articles(folder)
    assert len(result.articles) == 2
    assert result.duplicates == ()
    assert all(a.other_sources == () for a in result.articles)


def test_the_same_input_in_any_order_keeps_the_same_article(tmp_path: Path) -> None:
    paths = [FIXTURES / name for name in (*WIRE, "dock-strike.html")]
    forward = load_sources(paths)
    backward = load_sources(list(reversed(paths)))
    assert {a.id for a in forward.articles} == {a.id for a in backward.articles}
    kept = {a.id: set(a.other_sources) for a in forward.articles}
    assert kept == {a.id: set(a.other_sources) for a in backward.articles}
    assert [a.origin for a in backward.articles] == [
        str(FIXTURES / "dock-strike.html"),
        str(paths[0]),
    ]


STORY = (
    "The regional council approved a new cycle path along the river on Tuesday. The path will "
    "run for eleven kilometres from the old mill to the ferry landing and open next summer, the "
    "council said. Cyclists had asked for a safe route for years after two accidents on the main "
    "road. Work starts in March and will close the riverside car park for six weeks."
)


def article(
    article_id: str, text: str = STORY, published: str | None = "2024-03-05", **more: Any
) -> Article:
    return Article(id=article_id, title="Cycle path", text=text, published=published, **more)


def test_preference_earliest_then_longest_then_smallest_id() -> None:
    longer = STORY + " A second phase may follow."
    cases = [
        ([article("b", published="2024-03-04"), article("a")], "b"),  # earliest published
        ([article("b", published=None), article("c")], "c"),  # an undated copy comes last
        ([article("a"), article("b", text=longer)], "b"),  # then the longest text
        ([article("b"), article("a")], "a"),  # then the smallest id
    ]
    for articles, expected in cases:
        unique, duplicates = merge_duplicates(articles)
        assert [a.id for a in unique] == [expected]
        assert [d.kept_id for d in duplicates] == [expected]


def test_threshold_decides_both_ways() -> None:
    edited = STORY.replace("eleven", "twelve").replace("six weeks", "two months")
    score = similarity(STORY, edited)
    assert 0.5 < score < 1.0
    below, _ = merge_duplicates([article("a"), article("b", text=edited)], threshold=score + 0.01)
    at, duplicates = merge_duplicates([article("a"), article("b", text=edited)], threshold=score)
    assert [a.id for a in below] == ["a", "b"]
    assert [a.id for a in at] == ["b"]  # "two months" makes the edited text the longer one
    assert duplicates[0].similarity == pytest.approx(score, abs=1e-4)


def test_other_sources_labels_and_no_repeats() -> None:
    kept = article("a", source="Daily Post", url="https://post.example/a")
    same_outlet = article(
        "b", published="2024-03-06", source="Daily Post", url="https://post.example/a"
    )
    no_url = article("c", published="2024-03-07", source="River News")
    bare = Article(id="d", title="Cycle path", text=STORY, published="2024-03-08", origin="x.txt:4")
    unique, duplicates = merge_duplicates([kept, same_outlet, no_url, bare])
    assert [a.other_sources for a in unique] == [("River News", "x.txt:4")]
    assert len(duplicates) == 3
    assert source_label(kept) == "Daily Post <https://post.example/a>"


def test_merged_copies_reach_the_chunks_and_the_index_metadata() -> None:
    merged = article("a", other_sources=(COURIER, "Ünïcode Post <https://u.example/é>"))
    (chunk,) = chunk_article(
        merged, max_tokens=200, overlap_tokens=0, count_tokens=lambda t: len(t.split())
    )
    assert chunk.other_sources == merged.other_sources
    meta = chunk_metadata(chunk)
    assert isinstance(meta["other_sources"], str)
    assert chunk_from_record(chunk.id, chunk.text, meta) == chunk
    plain = chunk_article(
        article("b"), max_tokens=200, overlap_tokens=0, count_tokens=lambda t: len(t.split())
    )[0]
    assert "other_sources" not in chunk_metadata(plain)
    assert chunk_from_record(plain.id, plain.text, chunk_metadata(plain)).other_sources == ()


def test_content_hash_follows_merged_sources() -> None:
    base = article("a")
    assert base.content_hash == article("a").content_hash
    assert base.content_hash != article("a", other_sources=(HARBOUR_TIMES,)).content_hash
    assert base.content_hash == replace(base, origin="elsewhere").content_hash
    assert base.content_hash != replace(base, authors=("A. Writer",)).content_hash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "By Jane Doe\nOSLO, May 2 (Nordwire) - Talks began.\nReporting by A; Editing by B",
            "Talks began.",
        ),
        ("BY J. DOE AND A. ROE | Reuters\nOSLO (AP) \u2014 Talks began.", "Talks began."),
        (
            "Jane Doe, Associated Press\nOSLO -- Talks began.\n(Additional reporting by C)",
            "Talks began.",
        ),
        (
            "By Friday, talks had begun.\nThey went on.",
            "By Friday, talks had begun.\nThey went on.",
        ),
        ("Talks began in Oslo - at last.", "Talks began in Oslo - at last."),
    ],
)
def test_strip_wire_boilerplate(text: str, expected: str) -> None:
    assert strip_wire_boilerplate(text) == expected


def test_normalized_words_and_shingles() -> None:
    assert normalize_words("The PORT's   re-opening, at last!") == [
        "the",
        "port",
        "s",
        "re",
        "opening",
        "at",
        "last",
    ]
    words = normalize_words("one two three four five six")
    assert len(shingle_set(words)) == 2
    assert len(shingle_set(words[:3])) == 1  # shorter than a shingle: the whole text is one
    assert shingle_set([]) == frozenset()
    assert min(shingle_set(words)) == 2585741181121691493  # the same in every process
    assert jaccard(frozenset({1, 2}), frozenset({2, 3})) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_signatures_kept_between_runs_give_the_same_outcome_and_hash_only_new_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    articles = list(load_articles(FIXTURES, dedup=False).articles)
    expected = merge_duplicates(articles)
    first = SignatureCache()
    assert merge_duplicates(articles, signatures=first) == expected
    first.save(tmp_path / "signatures.npz")

    hashed: list[str] = []
    real = dedup_module._minhash

    def counted(texts: list[str]) -> list[Any]:
        hashed.extend(texts)
        return real(texts)

    monkeypatch.setattr(dedup_module, "_minhash", counted)
    edited = [replace(articles[0], text=articles[0].text + " A line added later."), *articles[1:]]
    outcome = merge_duplicates(edited, signatures=SignatureCache.load(tmp_path / "signatures.npz"))
    assert hashed == [edited[0].text]  # only the edited text was hashed again
    assert outcome == merge_duplicates(edited)
    (tmp_path / "damaged.npz").write_bytes(b"not a cache")
    damaged = SignatureCache.load(tmp_path / "damaged.npz")  # a damaged cache is an empty one
    assert merge_duplicates(articles, signatures=damaged) == expected

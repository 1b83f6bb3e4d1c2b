"""Time words in questions, read against the as-of date."""

from __future__ import annotations

import datetime as dt

import pytest

from qa.when import asks_only_for_news, parse_as_of, read_time

AS_OF = dt.date(2024, 3, 20)  # a Wednesday


@pytest.mark.parametrize(
    ("question", "first", "last", "strict", "recent"),
    [
        ("What happened today?", "2024-03-20", "2024-03-20", True, False),
        ("Who resigned yesterday?", "2024-03-19", "2024-03-19", True, False),
        ("Which state was sued this week?", "2024-03-13", "2024-03-20", True, False),
        ("A door blew out last week on which airline?", "2024-03-06", "2024-03-20", True, False),
        ("What happened in the past 3 days?", "2024-03-17", "2024-03-20", True, False),
        ("What did it cost over the last two weeks?", "2024-03-06", "2024-03-20", True, False),
        ("Who won this month?", "2024-03-01", "2024-03-20", True, False),
        ("Who won last month?", "2024-02-01", "2024-02-29", True, False),
        ("Who won last year?", "2023-01-01", "2023-12-31", True, False),
        ("What did the minister say in March?", "2024-03-01", "2024-03-20", False, False),
        ("What did the minister say in November?", "2023-11-01", "2023-11-30", False, False),
        ("How has the war gone since May?", "2023-05-01", "2024-03-20", False, False),
        ("What changed since 2023?", "2023-01-01", "2024-03-20", False, False),
        ("What changed since Sept 2023?", "2023-09-01", "2024-03-20", False, False),
        ("Who led the polls in 2023?", "2023-01-01", "2023-12-31", False, False),
        ("What is the latest on the strike?", "2024-03-13", "2024-03-20", False, True),
        ("Who is currently in charge?", "2024-03-13", "2024-03-20", False, True),
        # a weekday: the week up to the as-of date, else the whole archive
        ("Who clinched the nomination Tuesday?", "2024-03-13", "2024-03-20", False, False),
        ("Who did Trump meet on Sunday?", "2024-03-13", "2024-03-20", False, False),
        ("Where did the tour end on Sunday night?", "2024-03-13", "2024-03-20", False, False),
        ("Which city did Monday's storm hit?", "2024-03-13", "2024-03-20", False, False),
    ],
)
def test_time_words_become_publication_days(
    question: str, first: str, last: str, strict: bool, recent: bool
) -> None:
    scope = read_time(question, AS_OF)
    assert scope is not None
    assert scope.first is not None
    assert scope.first.isoformat() == first
    assert scope.last.isoformat() == last
    assert (scope.strict, scope.recent) == (strict, recent)
    assert last in scope.describe()
    assert scope.phrase in scope.describe()


@pytest.mark.parametrize(
    "question",
    [
        "Who is Wang Lei?",
        "What may happen to the New York office?",
        "When was the treaty signed in 1871?",  # an event's year, not a publication year
        "Who won the game in 2030?",  # after the as-of date
        "Who won Super Tuesday?",  # a day's name in a name
        "What were the Black Friday deals?",
        "Which museums open on Sundays?",  # a habit, not a day
        "Who cleans every Monday?",
    ],
)
def test_no_time_when_none_is_named(question: str) -> None:
    assert read_time(question, AS_OF) is None


def test_a_newer_window_widens_to_the_whole_archive() -> None:
    scope = read_time("What is the latest news?", AS_OF)
    assert scope is not None
    whole = scope.widened(None)
    assert whole.first is None
    assert whole.last == AS_OF
    assert whole.describe() == "all articles up to 2024-03-20 (none in \u201clatest\u201d answered)"


@pytest.mark.parametrize(
    ("question", "digest"),
    [
        ("What happened this week?", True),
        ("What's the latest news?", True),
        ("Any news today?", True),
        ("What happened this week in Gaza?", False),
        ("Which state was sued this week?", False),
        ("Who is Wang Lei?", False),
    ],
)
def test_a_question_naming_only_a_time_asks_for_the_news(question: str, digest: bool) -> None:
    assert asks_only_for_news(question, read_time(question, AS_OF)) is digest


def test_as_of_dates_are_read_or_refused_with_an_example() -> None:
    assert parse_as_of("2024-03-20") == AS_OF
    assert parse_as_of("2024-03-20T10:00:00") == AS_OF
    assert parse_as_of(dt.datetime(2024, 3, 20, 9)) == AS_OF
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_as_of("next tuesday")

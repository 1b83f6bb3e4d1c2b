"""Time in a question: phrases such as "this week", "in March" or "latest", read against the
question's as-of date into the publication days to search, and what is left of the question
once they are taken out. Pure: standard library only."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

MONTH_NAMES = tuple(
    "january february march april may june july august september october november december".split()
)
WEEKDAYS = tuple("monday tuesday wednesday thursday friday saturday sunday".split())
MONTHS = {name: number for number, name in enumerate(MONTH_NAMES, start=1)}
MONTHS.update({name[:3]: number for number, name in enumerate(MONTH_NAMES, start=1)})
MONTHS["sept"] = 9
# Longest first: "september" before "sept" before "sep".
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_COUNTS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10}
# Words that only ask for news ("what's new?"), with nothing left to search for once time is out.
_NEWS_WORDS = frozenset(
    "what whats what's happened happening happen has have been is are was were the a an any "
    "news new latest stories story headlines top there going on tell me about recent recently "
    "events event in of today this week month yesterday lately did do does".split()
)
# A recency preference widens its window this way until a passage answers.
RECENT_WINDOWS_DAYS = (7, 31)
THIS_WEEK_DAYS = 7  # "this week": the as-of date and the 7 days before it
LAST_WEEK_DAYS = 14  # "last week": news about it is often published this week


@dataclass(frozen=True, slots=True)
class TimeScope:
    """When the passages of a question may be published: from `first` to `last` (both
    included; `first` None: no lower bound), read from `phrase` in the question. `strict`: the
    question is about that time itself ("this week"), so nothing outside it may answer; else
    (a year or month that may be the event's, not the article's) the whole archive is searched
    when nothing inside it answers. `recent`: the newest news is wanted ("latest"), searched in
    widening windows. `implied`: the question names no time, and a news archive is searched
    newest first (`newest_first`)."""

    phrase: str
    first: dt.date | None
    last: dt.date
    strict: bool = True
    recent: bool = False
    implied: bool = False

    def describe(self) -> str:
        """How the answer's footer states the time the search used."""
        said = f"\u201c{self.phrase}\u201d"
        last = self.last.isoformat()
        if self.implied and self.first is not None:
            return f"articles published {self.first.isoformat()} to {last} (newest news first)"
        if self.first is None:
            return f"all articles up to {last} (none in {said} answered)"
        if self.first == self.last:
            return f"articles published on {last} ({said})"
        return f"articles published {self.first.isoformat()} to {last} ({said})"

    def widened(self, days: int | None) -> TimeScope:
        """The same scope over the `days` before its last day (None: the whole archive)."""
        first = None if days is None else self.last - dt.timedelta(days=days)
        return TimeScope(self.phrase, first, self.last, self.strict, self.recent)


def newest_first(as_of: dt.date, days: int) -> TimeScope:
    """The newest news for a question that names no time: the `days` up to `as_of`, answered
    from when it answers about as well as the whole archive (`QAChain.find`); questions to a
    news archive are mostly about the news of then ("Who did Macron appoint as prime
    minister?")."""
    return TimeScope("", _days_before(as_of, days), as_of, strict=False, implied=True)


def parse_as_of(value: object) -> dt.date:
    """An as-of date from a date, a datetime or an ISO `YYYY-MM-DD` string; `ValueError` with a
    message a user can act on otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(
            f"The as-of date {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-03-20."
        ) from None


def read_time(question: str, as_of: dt.date) -> TimeScope | None:
    """The time `question` asks about, against `as_of`; None when it names none."""
    text = question.lower().replace("\u2019", "'")
    for reader in (_relative_days, _named_periods, _months_and_years, _weekdays, _recency):
        scope = reader(text, as_of)
        if scope is not None:
            return scope
    return None


def asks_only_for_news(question: str, scope: TimeScope | None) -> bool:
    """Whether the question, its time taken out, names no subject: "What happened this week?",
    "What's the latest news?". Such a question is answered with a digest of the period."""
    if scope is None:
        return False
    text = question.lower().replace("\u2019", "'")
    remaining = re.findall(r"[a-z']+", text.replace(scope.phrase, " "))
    return all(word in _NEWS_WORDS for word in remaining)


def _days_before(as_of: dt.date, days: int) -> dt.date:
    return as_of - dt.timedelta(days=days)


def _relative_days(text: str, as_of: dt.date) -> TimeScope | None:
    """today, yesterday, this week, last week, the past N days/weeks/months."""
    match = re.search(
        r"\b(?:in |over |during )?(?:the )?(?:past|last|previous) (?P<count>\d+|"
        + "|".join(_COUNTS)
        + r") (?P<unit>day|week|month|year)s?\b",
        text,
    )
    if match:
        count = match.group("count")
        number = int(count) if count.isdigit() else _COUNTS[count]
        days = number * _UNITS[match.group("unit")]
        return TimeScope(match.group(0).strip(), _days_before(as_of, days), as_of)
    simple = [
        (r"\btoday\b|\btonight\b|\bthis (?:morning|afternoon|evening)\b", 0, 0),
        (r"\byesterday\b", 1, 1),
        (r"\b(?:this|the past|the last|past) week(?:end)?\b", THIS_WEEK_DAYS, 0),
        (r"\b(?:last|previous) week(?:end)?\b", LAST_WEEK_DAYS, 0),
    ]
    for pattern, back, end in simple:
        found = re.search(pattern, text)
        if found:
            return TimeScope(found.group(0), _days_before(as_of, back), _days_before(as_of, end))
    return None


def _named_periods(text: str, as_of: dt.date) -> TimeScope | None:
    """this month, last month, this year, last year."""
    found = re.search(r"\b(this|last|previous) (month|year)\b", text)
    if not found:
        return None
    which, unit = found.groups()
    if unit == "month":
        if which == "this":
            return TimeScope(found.group(0), as_of.replace(day=1), as_of)
        end = as_of.replace(day=1) - dt.timedelta(days=1)
        return TimeScope(found.group(0), end.replace(day=1), end)
    if which == "this":
        return TimeScope(found.group(0), as_of.replace(month=1, day=1), as_of)
    year = as_of.year - 1
    return TimeScope(found.group(0), dt.date(year, 1, 1), dt.date(year, 12, 31))


def _months_and_years(text: str, as_of: dt.date) -> TimeScope | None:
    """in March, in March 2023, since March, since 2023, in 2023: not strict (the year may be
    the event's, which an older or newer article also reports)."""
    since = re.search(
        r"\bsince (?:" + _MONTH + r"(?:,? " + _YEAR + r")?|(?P<alone>(?:19|20)\d\d))\b", text
    )
    if since:
        first = _period(since.group("month"), since.group("year") or since.group("alone"), as_of)
        if first is not None:
            return TimeScope(since.group(0), first[0], as_of, strict=False)
    within = re.search(r"\b(?:in|during|of) " + _MONTH + r"(?:,? " + _YEAR + r")?\b", text)
    if within:
        period = _period(within.group("month"), within.group("year"), as_of)
        if period is not None:
            return TimeScope(within.group(0), period[0], min(period[1], as_of), strict=False)
    year = re.search(r"\b(?:in|during) " + _YEAR + r"\b", text)
    if year:
        period = _period(None, year.group("year"), as_of)
        if period is not None:
            return TimeScope(year.group(0), period[0], min(period[1], as_of), strict=False)
    return None


def _period(month: str | None, year: str | None, as_of: dt.date) -> tuple[dt.date, dt.date] | None:
    """The first and last day of a month (of `year`, else its latest one up to `as_of`) or of
    a year; None if it starts after `as_of`."""
    if month is None:
        if year is None or int(year) > as_of.year:
            return None
        return dt.date(int(year), 1, 1), dt.date(int(year), 12, 31)
    number = MONTHS[month.rstrip(".")]  # the pattern names only months
    chosen = int(year) if year else (as_of.year if number <= as_of.month else as_of.year - 1)
    first = dt.date(chosen, number, 1)
    if first > as_of:
        return None
    return first, dt.date(chosen, number, calendar.monthrange(chosen, number)[1])


def _weekdays(text: str, as_of: dt.date) -> TimeScope | None:
    """on Sunday, last Tuesday, Monday night: a day of the week up to the as-of date, so its
    news is in the week before it; not strict (a weekday may also be a date's: "on Sunday,
    Jan. 7, 2020"). Not a day's name in a name ("Super Tuesday", "Black Friday"), nor a habit
    ("on Sundays", "every Monday")."""
    found = re.search(
        r"(?<!super )(?<!black )(?<!cyber )(?<!good )(?<!giving )(?<!ash )(?<!fat )"
        r"(?<!every )(?<!each )\b(?:(?:on|last|this past) )?"
        r"(?:" + "|".join(WEEKDAYS) + ")"
        r"(?: (?:morning|afternoon|evening|night))?\b",
        text,
    )
    if found is None:
        return None
    return TimeScope(found.group(0), _days_before(as_of, THIS_WEEK_DAYS), as_of, strict=False)


def _recency(text: str, as_of: dt.date) -> TimeScope | None:
    """latest, newest, most recent, recently, now, currently, so far, still, new (not in a
    name: "New York")."""
    found = re.search(
        r"\b(?:latest|newest|most recent|recent(?:ly)?|lately|right now|now|currently|current|"
        r"so far|as of now|these days|ongoing)\b",
        text,
    )
    if found is None:
        found = re.search(r"\b(?:what's|what is|anything) new\b", text)
    if found is None:
        return None
    return TimeScope(
        found.group(0),
        _days_before(as_of, RECENT_WINDOWS_DAYS[0]),
        as_of,
        strict=False,
        recent=True,
    )

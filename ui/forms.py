"""The page's form fields read into what `qa` takes: the filter from the outlet and date fields,
the URLs from the upload box."""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.retrieval import PassageFilter

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: str | None, name: str) -> str | None:
    """An ISO date from a date field (which may carry a time), or None when empty."""
    text = (value or "").strip()
    if not text:
        return None
    day = text[:10]
    if not _DATE.match(day):
        raise ValueError(f"The {name} date must look like 2024-03-19, not {text[:40]!r}.")
    return day


def build_filter(
    outlets: Sequence[str] | None, date_from: str | None, date_to: str | None
) -> PassageFilter | None:
    """The retrieval filter the page's fields describe, or None when they allow everything."""
    start = parse_date(date_from, "start")
    end = parse_date(date_to, "end")
    if start and end and start > end:
        raise ValueError(f"The start date {start} is after the end date {end}.")
    chosen = PassageFilter(frozenset(outlets or ()), start, end)
    return chosen if chosen.active else None


def split_urls(text: str | None) -> list[str]:
    """The non-blank lines of the URL box, trimmed."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]

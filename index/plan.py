"""What one rebuild or sync changes: the plan (articles added, updated, unchanged, removed) made
by comparing what was read with the live build's record, and the report of the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from index.manifest import ArticleEntry
from index.types import Article, Duplicate, Rejection, has_content_id, looks_like_content_id

Mode = Literal["rebuild", "sync"]


@dataclass(frozen=True, slots=True)
class IndexReport:
    """The outcome of a rebuild or sync. Every input is accounted for exactly once:
    `added + updated + unchanged + duplicates + rejected == inputs`."""

    mode: Mode
    inputs: int
    added: tuple[str, ...]  # article ids
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]  # ids of articles no source has any more
    duplicates: tuple[Duplicate, ...]
    rejected: tuple[Rejection, ...]
    chunks_embedded: int
    chunks_copied: int  # reused, not embedded: copied, or left in an earlier build
    chunks_total: int  # in the live build after the run
    build_id: str  # the live build after the run
    published: bool  # whether a new build went live (False: nothing changed)
    seconds: float
    # Of the reused chunks, those copied into the new build (the rest stay in earlier builds it
    # reads), and how many earlier builds it reads.
    chunks_rewritten: int = 0
    layers: int = 0

    def __post_init__(self) -> None:
        if self.accepted + len(self.rejected) != self.inputs:
            raise ValueError(f"report does not add up: {self.accepted} + {self.rejected!r}")

    @property
    def accepted(self) -> int:
        """Inputs read and indexed, or merged into an indexed article as a duplicate."""
        return len(self.added) + len(self.updated) + len(self.unchanged) + len(self.duplicates)

    @property
    def articles(self) -> int:
        """Articles in the index after the run."""
        return len(self.added) + len(self.updated) + len(self.unchanged)

    @property
    def articles_read(self) -> int:
        return self.articles

    @property
    def chunks_written(self) -> int:
        return self.chunks_embedded


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """How the articles read differ from the live build's."""

    added: tuple[Article, ...]
    updated: tuple[tuple[str, Article], ...]  # (id in the live build, article now)
    unchanged: tuple[Article, ...]
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def plan_changes(previous: Mapping[str, ArticleEntry], articles: Sequence[Article]) -> ChangePlan:
    """Compare articles with the live build's record, by id and content hash.

    An article whose id is new but whose origin (file, "file:line" or URL) held an article that is
    gone counts as updated: a file edited in place, whose content-hash id changed. Only ids made
    from the content are matched so: an id of the article's own ("wire-2" on the line "wire-3"
    had) names another article, added while the old one is removed.
    """
    current = {a.id for a in articles}
    gone_by_origin = {
        entry.origin: old_id
        for old_id, entry in previous.items()
        if old_id not in current and entry.origin and looks_like_content_id(old_id)
    }
    added: list[Article] = []
    updated: list[tuple[str, Article]] = []
    unchanged: list[Article] = []
    for article in articles:
        old = previous.get(article.id)
        if old is not None:
            if old.content_hash == article.content_hash:
                unchanged.append(article)
            else:
                updated.append((article.id, article))
        elif has_content_id(article) and (old_id := gone_by_origin.pop(article.origin, None)):
            updated.append((old_id, article))
        else:
            added.append(article)
    replaced = {old_id for old_id, _ in updated}
    removed = tuple(i for i in previous if i not in current and i not in replaced)
    return ChangePlan(tuple(added), tuple(updated), tuple(unchanged), removed)

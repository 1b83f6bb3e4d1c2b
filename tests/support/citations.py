"""A citation of the Xinhua sample article, as the client formats and the saved conversations
tests use it."""

from __future__ import annotations

from qa.types import Citation

PASSAGE = (
    "BRUSSELS, March 19 (Xinhua) -- China provides opportunities. Wang Lei, coordinator for "
    "cyber and digital affairs, made the remarks in Brussels."
)
SPAN = (PASSAGE.index("Wang Lei"), len(PASSAGE))


def xinhua_citation(start: int = 0, support: float = 0.99) -> Citation:
    """Marker 1 citing `PASSAGE`, found at `start` in its article, backed by `SPAN`."""
    return Citation(
        marker=1,
        article_id="xinhua-1",
        title="China offers opportunities for EU's digital development, says diplomat",
        source="Xinhua",
        url="https://english.news.cn/20240319/x.html",
        published="2024-03-19",
        passage=PASSAGE,
        start=start,
        end=start + len(PASSAGE),
        score=0.03,
        spans=(SPAN,),
        support=support,
    )

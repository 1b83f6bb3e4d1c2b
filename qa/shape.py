"""The answer's shape: one cited sentence for a factoid question, a few cited sentences for a
question with several parts or an open one, a digest for "what happened this week?". Pure."""

from __future__ import annotations

import re
from typing import Literal

Shape = Literal["factoid", "open", "digest"]

# Questions that ask for an account rather than one fact.
_OPEN = re.compile(
    r"^(?:so |and |but )?(?:"
    r"what (?:has |have )?happen(?:ed|s|ing)|what(?:'s| is| has been) (?:going on|happening)|"
    r"what(?:'s| is) new|what do we know|what (?:is|was) the (?:background|story|context)|"
    r"how (?:did|has|have|is|are|was|were) .{0,80}\b(?:develop|evolv|chang|unfold|progress|go|"
    r"gone|turn(?:ed)? out|play(?:ed)? out)|"
    r"what are the (?:main )?(?:arguments|reasons|positions|views|sides|options|issues|concerns)|"
    r"what (?:were|are) the (?:main )?(?:arguments|reasons|positions|views|consequences|effects)|"
    r"(?:describe|summari[sz]e|explain|tell me about|give me (?:an? )?(?:overview|summary))\b"
    r")",
    re.IGNORECASE,
)
# A second question joined to the first: "..., and what did China offer?"
_SECOND_PART = re.compile(
    r"(?:,|;)?\s+and (?:what|who|whom|when|where|why|how|which|did|does|do|is|are|was|were|has|"
    r"have)\b",
    re.IGNORECASE,
)


def answer_shape(question: str, only_news: bool = False) -> Shape:
    """What kind of answer `question` wants; `only_news`: it names no subject beyond a time."""
    if only_news:
        return "digest"
    text = " ".join(question.split())
    if _OPEN.search(text):
        return "open"
    if text.count("?") > 1 or _SECOND_PART.search(text):
        return "open"
    return "factoid"

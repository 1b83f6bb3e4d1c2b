"""The answer's shape: one cited sentence for a factoid question, a few cited sentences for a
question with several parts or an open one, a digest for "what happened this week?"; and the
kind of thing a factoid question asks for by name ("which state"). Pure."""

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


# Kinds of thing a factoid question may ask for by name, which a small model confuses with
# what is linked to them: the company behind a game or app, the agency in a state, the city of
# a final.
KINDS = (
    "state|country|city|county|island|territory|team|club|company|automaker|airline|brand|"
    "platform|app|website|game|film|movie|show|series|book|song|album|festival|award|university|"
    "college|drug|party"
)
# Up to two words may describe the kind ("which popular online game"), but none that starts
# another part of the question ("what [is] installed by state officials"); a kind's possessive
# asks for something else ("which country's imports").
_LINKING = r"(?:of|by|in|on|at|to|for|from|with|as|is|are|was|were|did|does|do|has|have|had|will)"
_ASKED_KIND = re.compile(
    rf"\b(?:which|what)\s+(?:(?!{_LINKING}\b)[a-z-]+\s+){{0,2}}?({KINDS})\b(?!['\u2019])",
    re.IGNORECASE,
)


def asked_kind(question: str) -> str | None:
    """The kind of thing `question` asks for by name ("Which state ...?" -> "state"), when it
    is one of `KINDS`; None otherwise."""
    found = _ASKED_KIND.search(" ".join(question.split()))
    return found.group(1).lower() if found else None

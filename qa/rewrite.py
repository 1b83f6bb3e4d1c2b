"""Follow-up questions made standalone before retrieval: by the chat model when there is one
(prompt `prompts/rewrite_*.md`), otherwise by a cheap rule that carries the topic words of the
earlier questions over."""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from prompts import render_prompt
from qa.text import STOP_WORDS, names, strip_markers

History = Sequence[tuple[str, str]]

_WORD = re.compile(r"[\w'\u2019-]+")
# Words that point back at something said before.
_ANAPHORA = frozenset(
    "it its it's they them their theirs he him his she her hers this that these those there "
    "then such one ones former latter".split()
)
_FOLLOW_UP_START = re.compile(
    r"^\s*(and|but|also|so|what about|how about|and what)\b", re.IGNORECASE
)
# The evidence check's stop words and the words of asking; a lone "s" or "t" (from "U.S.",
# "AT&T") stays a topic word.
_STOP = (STOP_WORDS - {"s", "t"}) | frozenset("yes tell say said please know".split())
# Anything longer than this many words with no pointer-back word stands on its own.
_SHORT = 5


def needs_context(question: str) -> bool:
    """True when `question` looks like it leans on an earlier turn: pronouns, ellipsis."""
    words = [w.lower() for w in _WORD.findall(question)]
    if not words:
        return False
    if any(w in _ANAPHORA for w in words):
        return True
    if _FOLLOW_UP_START.match(question):
        return True
    # A short question leans on the conversation unless it names its own subject.
    return len(words) <= _SHORT and not names(question)


def topic_words(text: str) -> list[str]:
    """The content words of `text`, in order, without repeats or stop words."""
    seen: list[str] = []
    for word in _WORD.findall(text):
        if word.lower() not in _STOP and word.lower() not in (s.lower() for s in seen):
            seen.append(word)
    return seen


def rewrite_by_rules(question: str, history: History) -> str:
    """`question` with the topic words of the conversation so far appended: those of the earlier
    questions back to the last one that stood alone, and those of the last answer."""
    if not history or not needs_context(question):
        return question
    have = {w.lower() for w in _WORD.findall(question)}
    carried: list[str] = []

    def carry(text: str) -> None:
        for word in topic_words(text):
            if word.lower() not in have:
                have.add(word.lower())
                carried.append(word)

    for past_question, _ in reversed(history):
        carry(past_question)
        if not needs_context(past_question):
            break
    carry(strip_markers(history[-1][1]))
    return f"{question} ({' '.join(carried)})" if carried else question


def rewrite_with_model(question: str, history: History, llm: BaseChatModel) -> str:
    """The chat model's standalone version of `question`; the rule-based one if it fails."""
    if not history or not needs_context(question):
        return question
    turns = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in history)
    messages = [
        SystemMessage(render_prompt("rewrite_system")),
        HumanMessage(render_prompt("rewrite_user", history=turns, question=question)),
    ]
    try:
        reply = llm.invoke(messages)
    except Exception:  # any backend failure: the rule still gives a usable query
        return rewrite_by_rules(question, history)
    rewritten = clean_rewrite(str(reply.content))
    return rewritten or rewrite_by_rules(question, history)


def clean_rewrite(text: str) -> str:
    """The first line of a model's rewrite, without quotes or a "Question:" label."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^(standalone question|question|rewritten)\s*:\s*", "", line, flags=re.I)
    return line.strip().strip("\"'“”").strip()


def rewrite_question(question: str, history: History, llm: BaseChatModel | None) -> str:
    """A standalone question for retrieval: by the model when given, else by rules."""
    if llm is None:
        return rewrite_by_rules(question, history)
    return rewrite_with_model(question, history, llm)

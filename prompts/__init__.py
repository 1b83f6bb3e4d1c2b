"""Prompt templates (`*.md` beside this file) and the loader that fills them in.

Templates use `{name}` fields; `render_prompt` refuses missing or unexpected fields so a template
and its caller cannot drift apart silently.
"""

from __future__ import annotations

import string
from functools import cache
from importlib import resources


class PromptError(Exception):
    """A template is missing or was rendered with the wrong fields."""


@cache
def load_prompt(name: str) -> str:
    """The text of template `name` (without `.md`)."""
    try:
        return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise PromptError(f"No prompt template named {name!r}") from e


def prompt_fields(name: str) -> set[str]:
    """The `{field}` names template `name` expects."""
    return {
        field for _, field, _, _ in string.Formatter().parse(load_prompt(name)) if field is not None
    }


def render_prompt(name: str, **values: str) -> str:
    """Template `name` with every field filled in from `values`, trailing whitespace trimmed."""
    expected = prompt_fields(name)
    if set(values) != expected:
        raise PromptError(
            f"Prompt {name!r} expects fields {sorted(expected)}, got {sorted(values)}"
        )
    return load_prompt(name).format(**values).strip()

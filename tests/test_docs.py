"""The README stays true: every setting is in its table, the quick start is the two commands."""

from __future__ import annotations

import re

from qa.config import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_table_lists_every_field_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(CITEQA_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    expected = {f"CITEQA_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_quick_start_is_make_run_and_make_test() -> None:
    quick_start = README.split("## Quick start")[1].split("##")[0]
    commands = re.findall(r"^make \w+", quick_start, flags=re.MULTILINE)
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")

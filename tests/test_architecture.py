"""Dependency rule for `app.py`, which import-linter cannot see (it is a module, not a package):
the UI imports gradio, `qa` and the standard library only."""

from __future__ import annotations

import ast
import sys

from tests.conftest import ROOT


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_app_imports_only_gradio_qa_and_the_standard_library() -> None:
    roots = imported_roots((ROOT / "app.py").read_text(encoding="utf-8"))
    third_party = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
    assert third_party == {"gradio", "qa"}


def test_imported_roots_sees_nested_imports() -> None:
    assert imported_roots("import a.b\nfrom c.d import e\ndef f():\n    import g\n") == {
        "a",
        "c",
        "g",
    }

"""Dependency rules that import-linter cannot see for `app.py` (a module, not a package), and the
UI's place on top: gradio only in `ui/` and `app.py`, Starlette and the MCP SDK only in the UI's
modules that serve other clients; `app.py` and `ui` import `qa` (never `index` or `prompts`
directly); nothing in `qa`, `index` or `prompts` imports the UI."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("qa", "index", "prompts", "ui")


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def roots_of(path: Path) -> set[str]:
    return imported_roots(path.read_text(encoding="utf-8"))


def third_party(roots: set[str]) -> set[str]:
    return {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}


def modules() -> dict[str, set[str]]:
    """Each of the project's modules (relative path) and the roots it imports."""
    found = {"app.py": roots_of(ROOT / "app.py")}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[path.relative_to(ROOT).as_posix()] = roots_of(path)
    return found


def test_app_imports_only_qa_ui_and_the_standard_library() -> None:
    assert third_party(roots_of(ROOT / "app.py")) == {"qa", "ui"}


# The modules of the UI that serve other clients, and the web libraries each may use.
CLIENT_SERVING = {"ui/api.py": {"starlette"}, "ui/mcp_server.py": {"starlette", "mcp"}}


def test_ui_imports_only_gradio_qa_itself_and_the_standard_library() -> None:
    """...and Starlette and the MCP SDK in the modules that serve other clients."""
    for name, roots in modules().items():
        if name.startswith("ui/"):
            assert third_party(roots) <= {"gradio", "qa", "ui"} | CLIENT_SERVING.get(name, set()), (
                name
            )


def test_gradio_only_in_ui_and_app() -> None:
    users = {name for name, roots in modules().items() if "gradio" in roots}
    assert users, "no module imports gradio: the check has nothing to see"
    assert all(name == "app.py" or name.startswith("ui/") for name in users), users


def test_rendering_and_forms_need_no_gradio() -> None:
    for name in ("ui/render.py", "ui/forms.py"):
        assert "gradio" not in roots_of(ROOT / name), name


def test_nothing_below_imports_the_ui() -> None:
    for name, roots in modules().items():
        if name.split("/")[0] in ("qa", "index", "prompts"):
            assert not roots & {"ui", "app"}, name


def test_imported_roots_sees_nested_imports() -> None:
    assert imported_roots("import a.b\nfrom c.d import e\ndef f():\n    import g\n") == {
        "a",
        "c",
        "g",
    }

"""Loading a script of `bench/` (not a package) as a module, to test its pure parts."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import ROOT


def load_bench(script: str) -> ModuleType:
    """`bench/<script>.py` as a module of its own."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{script}", ROOT / "bench" / f"{script}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

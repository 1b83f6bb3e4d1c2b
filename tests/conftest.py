"""Shared fixtures: real models, a real Chroma index of the sample corpus, settings for tests."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from index.build import rebuild_index
from index.embeddings import Embedder, open_embedder
from index.offline import enforce_offline
from qa import QAChain, Settings, build_chain
from tests.offline_guard import OUTBOUND, install
from tests.support.remembered import remembering

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ARTICLES = ROOT / "articles"
XINHUA_TITLE = "China offers opportunities for EU's digital development, says diplomat"
ARTIFACTS = ROOT / "test-artifacts"
RELIABILITY_RESULT = ROOT / "bench" / "results" / "reliability.json"

# Property tests: `make test` runs the "citeqa" profile, `make soak` the "soak" one (5x the
# examples), `make unit` the "unit" one (a tenth). Use `examples(n)` for a test's own budget so
# that it scales with the profile too.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "citeqa", max_examples=1000, deadline=None, suppress_health_check=_SLOW_OK
)
settings.register_profile("soak", max_examples=5000, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("unit", max_examples=100, deadline=None, suppress_health_check=_SLOW_OK)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "citeqa")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """`n` examples under `make test`, five times as many under `make soak`, a tenth (but no
    fewer than ten, or `n` if less) under `make unit`."""
    if PROFILE == "soak":
        return n * 5
    return max(n // 10, min(n, 10)) if PROFILE == "unit" else n


@dataclass
class ReliabilityRow:
    """One line of the reliability summary table (docs/reliability.md)."""

    part: str
    inputs: int = 0
    faults: int = 0
    kills_survived: int = 0
    errors: int = 0
    p95_ms: float | None = None
    rss_drift: float | None = None  # end RSS / start RSS - 1
    note: str = ""


_RELIABILITY: list[ReliabilityRow] = []


@pytest.fixture
def reliability() -> Iterator[list[ReliabilityRow]]:
    """Append `ReliabilityRow`s here; the run prints them as a table and writes them to
    bench/results/reliability.json."""
    rows: list[ReliabilityRow] = []
    yield rows
    _RELIABILITY.extend(rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RELIABILITY:
        return
    header = ("part", "inputs", "faults", "kills survived", "errors", "p95 ms", "RSS drift")
    lines = [
        (
            row.part,
            str(row.inputs),
            str(row.faults),
            str(row.kills_survived),
            str(row.errors),
            "" if row.p95_ms is None else f"{row.p95_ms:.0f}",
            "" if row.rss_drift is None else f"{row.rss_drift:+.1%}",
        )
        for row in _RELIABILITY
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    terminalreporter.section("reliability")
    for cells in [header, tuple("-" * w for w in widths), *lines]:
        terminalreporter.write_line(
            " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        )
    RELIABILITY_RESULT.parent.mkdir(parents=True, exist_ok=True)
    RELIABILITY_RESULT.write_text(
        json.dumps({"profile": PROFILE, "rows": [asdict(r) for r in _RELIABILITY]}, indent=2),
        encoding="utf-8",
    )


# Test scopes: `make unit` deselects the tests marked model, server, browser or slow. Most are
# marked here from the fixtures they use; tests that load a model or start a server by
# themselves carry the marker in their module.
MODEL_FIXTURES = frozenset({"smol_chain", "qwen_chain", "smol_app", "audited_app", "llama_server"})
SERVER_FIXTURES = frozenset(
    {
        "smol_app",
        "upload_app",
        "page_url",
        "chroma_server",
        "llama_server",
        "misbehaving_server",
        "audited_app",
        "site",
    }
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        callspec = getattr(item, "callspec", None)
        on_server = callspec is not None and callspec.params.get("index_settings") == "server"
        if used & SERVER_FIXTURES or on_server:
            item.add_marker(pytest.mark.server)


# Offline: every attempt to reach a non-loopback address fails the test it happened in, even
# when the code under test swallowed the error (tests/offline_guard.py); attempts outside any
# test (collection, session teardown) fail the run.
install()


def pytest_runtest_setup(item: pytest.Item) -> None:
    OUTBOUND.outside_tests.extend(OUTBOUND.take())


@pytest.fixture(autouse=True)
def offline_guard() -> Iterator[None]:
    """Fails the test at teardown if it (or a fixture set up for it) tried to go online."""
    yield
    OUTBOUND.check()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    OUTBOUND.outside_tests.extend(OUTBOUND.take())
    if OUTBOUND.outside_tests:
        listed = "\n  ".join(dict.fromkeys(OUTBOUND.outside_tests))
        print(f"\nAttempts to reach a non-loopback address outside any test:\n  {listed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def clean_environment() -> Iterator[None]:
    """Tests see no CITEQA_* settings from the caller's shell, and nothing goes online."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CITEQA_")}
    for key in saved:
        del os.environ[key]
    enforce_offline()
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged embedding model, remembering the vectors it computed (tests/support/
    remembered.py): the sample articles are indexed by many fixtures, embedded once."""
    return remembering(open_embedder())


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The evaluation harness's index folder (`--cache-dir`), shared by the tests that run it
    on the same articles: the harness keys each index by content and reuses it."""
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A real Chroma index of the bundled sample articles, built once per test session."""
    index_dir = tmp_path_factory.mktemp("index")
    settings = Settings(index_dir=index_dir)
    rebuild_index(settings, embedder, SAMPLE_ARTICLES)
    return index_dir


def make_settings(index_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"index_dir": index_dir, "llm_threads": 2, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def smol_settings(sample_index: Path) -> Settings:
    return make_settings(sample_index, llm_model="smollm2-135m", max_answer_tokens=64)


@pytest.fixture(scope="session")
def smol_chain(smol_settings: Settings) -> QAChain:
    """The real chain with the small SmolLM2 model: fast enough for many tests."""
    return build_chain(smol_settings)


@pytest.fixture(scope="session")
def qwen_chain(sample_index: Path) -> QAChain:
    """The real chain with the default Qwen2.5-Coder-1.5B model."""
    return build_chain(make_settings(sample_index, max_answer_tokens=96))


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A small writable corpus: the Xinhua article and one Wikipedia article of the sample."""
    target = tmp_path / "articles"
    target.mkdir()
    for path in SAMPLE_ARTICLES.glob("*.txt"):
        shutil.copy(path, target)
    lines = (SAMPLE_ARTICLES / "squad-sample.jsonl").read_text(encoding="utf-8").splitlines()
    amazon = [line for line in lines if "squad11:Amazon_rainforest" in line]
    (target / "one.jsonl").write_text(amazon[0] + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

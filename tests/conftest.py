"""Shared fixtures: real models, a real Chroma index of the sample corpus, settings for tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.build import rebuild_index
from index.embeddings import Embedder, open_embedder
from index.offline import enforce_offline
from qa import QAChain, Settings, build_chain

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ARTICLES = ROOT / "articles"
XINHUA_TITLE = "China offers opportunities for EU's digital development, says diplomat"
ARTIFACTS = ROOT / "test-artifacts"


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
    return open_embedder()


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

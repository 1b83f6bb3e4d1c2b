"""What tests build: chains over an index, the page served for a chain, writable indexed
libraries, generated article text, and a chat model that records what it was sent."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from index.build import rebuild_index
from index.embeddings import Embedder
from index.reader import open_store
from qa import QAChain, Settings, build_chain
from qa.retrieval import PassageRetriever
from tests.conftest import SAMPLE_ARTICLES, make_settings
from ui.page import create_demo
from ui.serving import launch_demo


def launch(chain: QAChain) -> tuple[gr.Blocks, str]:
    """The page for `chain`, served as `python app.py` serves it (the chat API and MCP beside
    it), on a free loopback port."""
    demo = create_demo(chain)
    url = launch_demo(demo, chain.settings, port=None, block=False, quiet=True, chain=chain)
    return demo, url


def open_chain(settings: Settings, embedder: Embedder) -> QAChain:
    """The real chain over `settings.index_dir`, reusing the session's embedding model."""
    store = open_store(settings.index_dir, settings.collection)
    retriever = PassageRetriever(
        embedder=embedder,
        store=store,
        keyword=store.keyword_index(),
        mode=settings.retriever,
        k=settings.top_k,
    )
    return build_chain(settings, retriever)


def build_library(root: Path, embedder: Embedder, **overrides: Any) -> Settings:
    """A writable copy of the sample articles, indexed, with its settings (extractive)."""
    articles = root / "articles"
    shutil.copytree(SAMPLE_ARTICLES, articles)
    settings = make_settings(
        root / "index", articles_dir=articles, llm_backend="extractive", **overrides
    )
    rebuild_index(settings, embedder, articles)
    return settings


WORDS = (
    "council harbour river bridge market school railway festival museum election budget "
    "hospital factory vineyard glacier stadium library airport orchestra drought harvest "
    "ferry tunnel observatory cathedral reservoir lighthouse parliament mayor engineers "
    "farmers students nurses miners sailors pilots judges voters tourists volunteers"
).split()
VERBS = "opened closed rebuilt approved rejected delayed expanded inspected celebrated".split()


def article_text(rng: random.Random, sentences: int) -> str:
    """`sentences` made-up news sentences drawn from `rng`."""
    return " ".join(
        f"The {rng.choice(WORDS)} {rng.choice(VERBS)} the {rng.choice(WORDS)} of "
        f"{rng.choice(WORDS)} after {rng.randint(2, 90)} days, {rng.choice(WORDS)} said."
        for _ in range(sentences)
    )


class RecordingChatModel(BaseChatModel):
    """Wraps a real chat model and records every conversation sent to it."""

    inner: BaseChatModel
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> ChatResult:
        self.calls.append(messages)
        return self.inner._generate(messages, stop=stop, **kw)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(messages)
        yield from self.inner._stream(messages, stop=stop, **kw)

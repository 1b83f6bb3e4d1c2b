"""The session's embedding model, remembering what it embedded: many fixtures index the sample
articles again, and the same text gets back the vector the real model computed for it, without
running the model again. Queries always run it."""

from __future__ import annotations

import numpy as np

from index.embeddings import Embedder, Engine

MAX_REMEMBERED = 50_000  # texts (about 80 MB of vectors); past it, start afresh


class RememberingEngine:
    """An `Engine` that runs `engine` only on document texts it has not seen."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dimension = engine.dimension
        self.max_seq_length = engine.max_seq_length
        self.description = engine.description
        self.vectors: dict[str, np.ndarray] = {}
        self.computed = 0  # texts the model embedded

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if len(self.vectors) + len(new) > MAX_REMEMBERED:
            self.vectors.clear()
            new = list(dict.fromkeys(texts))
        if new:
            self.vectors.update(zip(new, self.engine.encode(new, batch_size), strict=True))
            self.computed += len(new)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])

    def encode_query(self, text: str) -> np.ndarray:
        return self.engine.encode_query(text)


def remembering(embedder: Embedder) -> Embedder:
    """`embedder` with its engine remembering document vectors."""
    engine = RememberingEngine(embedder.engine)
    return Embedder(engine, embedder.name, embedder.count_tokens, embedder.batch_size)

"""The embedding model: questions are embedded like documents, on a thread of their own."""

from __future__ import annotations

import numpy as np
import torch

from index.embeddings import Embedder


def test_a_query_gets_the_vector_its_text_gets_as_a_document(embedder: Embedder) -> None:
    threads = torch.get_num_threads()
    text = "When did the harbour bridge open?"
    query = np.asarray(embedder.embed_query(text))
    document = np.asarray(embedder.embed_documents([text])[0])
    assert float(np.dot(query, document)) > 0.9999
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    # The query thread's single core is its own: the caller's setting is untouched.
    assert torch.get_num_threads() == threads

"""An index's fingerprint: what it is computed from, and the check that an index fits the settings.

Small on purpose: readers import it to check an index without loading the code that writes one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from index.chunking import CHUNKER_VERSION
from index.errors import IndexMismatchError
from index.layout import REBUILD_HINT
from index.manifest import IndexFingerprint

if TYPE_CHECKING:
    from index.config import IndexSettings
    from index.embeddings import Embedder


def fingerprint_for(settings: IndexSettings, embedder: Embedder) -> IndexFingerprint:
    """The fingerprint an index built with these settings and this model carries."""
    return IndexFingerprint(
        embedding_model=embedder.name,
        dimension=embedder.dimension,
        chunk_tokens=min(settings.chunk_tokens, embedder.max_tokens),
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        chunker_version=CHUNKER_VERSION,
        embed_titles=settings.embed_titles,
    )


def settings_key(settings: IndexSettings) -> str:
    """The settings a fingerprint is computed from (the model by its path), as text."""
    model = str(settings.embedding_model_path.resolve()) if settings.embedding_model_path else ""
    return json.dumps(
        [
            model,
            settings.chunk_tokens,
            settings.chunk_overlap_tokens,
            settings.embed_titles,
            CHUNKER_VERSION,
        ]
    )


def check_fingerprint(
    actual: IndexFingerprint, expected: IndexFingerprint, *, syncing: bool = False
) -> None:
    """`IndexMismatchError` unless the index was built the way `expected` says; `syncing`: the
    error says that a sync cannot change how the index is built (it would mix chunks made two
    ways)."""
    if actual != expected:
        remedy = (
            "A sync cannot change how the index is built; rebuild it with"
            if syncing
            else "Rebuild it with"
        )
        raise IndexMismatchError(
            f"The index was built with different settings: {actual.differences(expected)}. "
            f"{remedy}: {REBUILD_HINT}"
        )

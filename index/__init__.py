"""The article index: loading, chunking, embedding, storing and rebuilding.

Nothing here knows about question answering; `qa` builds on top of it.
"""

from index.config import IndexSettings
from index.sources import load_articles
from index.types import Article, Chunk, LoadResult, Rejection

__all__ = ["Article", "Chunk", "IndexSettings", "LoadResult", "Rejection", "load_articles"]

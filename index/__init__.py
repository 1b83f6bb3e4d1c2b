"""The article index: loading, chunking, embedding, storing and rebuilding.

Nothing here knows about question answering; `qa` builds on top of it.
"""

from index.articles import Article, LoadResult, Rejection, load_articles
from index.chunking import Chunk
from index.config import IndexSettings

__all__ = ["Article", "Chunk", "IndexSettings", "LoadResult", "Rejection", "load_articles"]

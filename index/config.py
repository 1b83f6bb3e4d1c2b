"""IndexSettings: where the index lives and how articles become chunks."""

import re
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.errors import SettingsError

EmbeddingBackend = Literal["auto", "openvino", "torch"]


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "citeqa" / "models"


# Chroma's rule for collection names, kept short; such a name is a safe folder name too.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,61})[A-Za-z0-9]")


class IndexSettings(BaseSettings):
    """Settings of the index, read from `CITEQA_*` environment variables at entry points."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", extra="ignore", frozen=True)

    index_dir: Path = Field(
        Path(".citeqa"),
        description="Directory of the index (with `CITEQA_CHROMA_URL`: its keyword index and "
        "build records only).",
    )
    articles_dir: Path = Field(
        Path("articles"),
        description="Default source of articles for `python -m index rebuild` and `sync`.",
    )
    collection: str = Field(
        "articles",
        description="Name of the Chroma collection (3-63 letters, digits, `.`, `_` or `-`).",
    )
    chroma_url: str | None = Field(
        None,
        description="A Chroma server to keep the vectors in, e.g. `http://127.0.0.1:8001`; "
        "empty means a local Chroma directory under `CITEQA_INDEX_DIR`.",
    )
    embedding_model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model directory; empty means the packaged "
        "all-MiniLM-L6-v2.",
    )
    embedding_backend: EmbeddingBackend = Field(
        "auto",
        description="What runs the embedding model: `openvino` (about twice as fast on CPU, "
        "converted once into `CITEQA_MODEL_CACHE_DIR`), `torch` (sentence-transformers), or "
        "`auto` (default): OpenVINO where the model allows, else torch.",
    )
    model_cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where models are prepared once: the default LLM assembled and verified, "
        "the embedding model converted for OpenVINO, the LLM's state after the fixed start of "
        "every prompt.",
    )
    chunk_tokens: int = Field(
        128, ge=32, le=254, description="Largest chunk, in the embedding model's word pieces."
    )
    chunk_overlap_tokens: int = Field(
        24, ge=0, le=128, description="Overlap between neighbouring chunks, in word pieces."
    )
    embed_titles: bool = Field(
        False, description="Embed and keyword-index each chunk with its article's title."
    )
    embed_batch_size: int = Field(32, ge=1, le=512, description="Chunks embedded per batch.")

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, value: str) -> str:
        if not _COLLECTION_NAME.fullmatch(value):
            raise ValueError(
                "must be 3-63 letters, digits, '.', '_' or '-', starting and ending with a "
                "letter or digit"
            )
        return value

    @field_validator("chroma_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8001")
        try:
            parts.port  # noqa: B018 (raises on a malformed port)
        except ValueError as e:
            raise ValueError(f"has an invalid port ({e})") from e
        return value.strip().rstrip("/")

    @classmethod
    def from_env(cls) -> Self:
        """The settings from the environment; `SettingsError` names any variable that is wrong."""
        try:
            return cls()
        except ValidationError as e:
            problems = "; ".join(f"{prefix_name(err['loc'])}: {err['msg']}" for err in e.errors())
            raise SettingsError(f"Invalid setting: {problems}. Fix or unset it.") from e


def prefix_name(location: tuple[int | str, ...]) -> str:
    """The environment variable for a settings field, e.g. `CITEQA_PORT`."""
    return "CITEQA_" + "_".join(str(part) for part in location).upper()

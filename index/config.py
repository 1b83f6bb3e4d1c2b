"""IndexSettings: where the index lives and how articles become chunks."""

from pathlib import Path
from typing import Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.errors import SettingsError


class IndexSettings(BaseSettings):
    """Settings of the index, read from `CITEQA_*` environment variables at entry points."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", extra="ignore", frozen=True)

    index_dir: Path = Field(Path(".citeqa"), description="Directory of the Chroma index.")
    articles_dir: Path = Field(
        Path("articles"), description="Default source of articles for `python -m index rebuild`."
    )
    collection: str = Field("articles", description="Name of the Chroma collection.")
    embedding_model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model directory; empty means the packaged "
        "all-MiniLM-L6-v2.",
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

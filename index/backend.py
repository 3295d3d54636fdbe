"""What answering needs from the index's storage: the interface a storage backend fills.

The ranking, the quote chooser and the bot read a loaded index only through the
members below. :class:`~index.store.StoredIndex` (memory-mapped segments on one
machine) is the one backend today; a distributed engine (OpenSearch holding the
passages, their vectors and their words; README, "Beyond one machine") would be a
second class with the same members, registered in :data:`BACKENDS` under the name
its manifest records, rather than a rewrite of what uses it.

Everything is asked for by id lists and returns arrays, so a remote backend can
answer each call with one request (a k-NN query, a BM25 query restricted to ids, a
multi-get), and nothing asks for "every passage".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from index.corpus import Article
from index.passages import Passage


@runtime_checkable
class VectorRows(Protocol):
    """Rows of vectors by id (``rows[ids]`` gives float32 ``len(ids) × dimension``)."""

    def __getitem__(self, key: Any) -> np.ndarray: ...
    def __len__(self) -> int: ...


@runtime_checkable
class NearestPassages(Protocol):
    """``search(queries, k) -> (scores, ids)``, one row per query, best first, -1 padded."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class LexicalSearch(Protocol):
    """BM25 over passages or articles (``index/lexical.py`` is the embedded one)."""

    @property
    def size(self) -> int: ...
    def search(self, query_tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def scores_of(self, query_tokens: Sequence[str], ids: Any) -> np.ndarray: ...
    def holding(self, query_tokens: Sequence[str], ids: Any) -> np.ndarray: ...
    def document_frequency(self, token: str) -> int: ...
    def idf(self, token: str) -> float: ...


@runtime_checkable
class PassageStore(Protocol):
    """A loaded index, as answering reads it."""

    manifest: Any
    articles: Sequence[Article]
    passages: Sequence[Passage]
    passage_vectors: VectorRows
    sentence_vectors: VectorRows
    faiss_index: NearestPassages  # the name of old; any nearest-passage search
    passage_bm25: LexicalSearch
    article_bm25: LexicalSearch

    def article(self, article: int, body: bool = True) -> Article: ...
    def passages_of(self, article: int) -> Sequence[int]: ...
    def sentence_rows(self, passage: int) -> slice: ...
    def find_passage(self, key: str, start: int) -> int | None: ...
    # The build's record of what the features need of the passage's text
    # (index/analysis.py); None makes answering work it out from the text.
    def passage_analysis(self, passage: int) -> bytes | None: ...
    # Its long sentences' windows and their vectors (index/windows.py); None: none.
    def passage_windows(self, passage: int) -> bytes | None: ...


def _embedded(index_dir: Path) -> PassageStore:
    from index.store import load_index

    return load_index(index_dir)


# Storage backends by the name a manifest records ("store"; "embedded" when absent).
BACKENDS: dict[str, Callable[[Path], PassageStore]] = {"embedded": _embedded}


def open_store(index_dir: Path) -> PassageStore:
    """The index in ``index_dir``, opened with the backend its manifest names."""
    from index.store import IndexLoadError, read_manifest

    manifest = read_manifest(index_dir)
    name = getattr(manifest, "store", "embedded")
    opener = BACKENDS.get(name)
    if opener is None:
        raise IndexLoadError(
            f"index at {index_dir} is kept by storage backend {name!r}, which this "
            f"quotebot does not have ({', '.join(BACKENDS)})"
        )
    return opener(index_dir)

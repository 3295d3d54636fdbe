"""Nearest passages by vector: one small interface, an exact and an approximate backend.

A segment of the store keeps its passage vectors memory-mapped; a dense backend
answers "the ``k`` vectors with the highest inner product with this query" over
them, skipping removed rows. Backends are picked by name (:func:`backend`), and
the name a segment was built with is recorded in its ``segment.json``, so it is
loaded the way it was written:

- ``exact``: FAISS's brute-force k-NN (``faiss.knn``) straight over the mapped
  ``passage-vectors.npy``: no file of its own and no second copy of the vectors;
- ``hnsw``: a FAISS HNSW graph (``IndexHNSWFlat``, inner product). Its file ends
  with the vectors themselves, so the segment keeps no ``passage-vectors.npy``:
  FAISS maps them (``IO_FLAG_MMAP_IFC``) and the store reads rows from the same
  mapped bytes, held once. Only the graph is read into memory;
- ``numpy``: exact search in plain NumPy, the reference the tests hold the
  others to.

:func:`choose` picks exact below ``ANN_MIN_VECTORS`` and HNSW above (README, "The
index on disk", says how both were measured). A remote engine (OpenSearch's
k-NN, say) would be one more class with these few methods.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from index.arrays import prefetch

# Below this many vectors a segment is searched exactly. Measured on 2 busy cores
# (README): exact search costs ~0.05 ms per 1,000 vectors (1 ms at 20,000); HNSW
# answers in 0.2-0.3 ms at 20,000 to 1,000,000, but must be built and is approximate.
ANN_MIN_VECTORS = 20_000
HNSW_FILE = "hnsw.faiss"
# Measured with scripts/ann_recall.py (README): recall@10 against exact of 0.992
# (real model, 20,100 passages) and 0.995 (tiny model, 100,100) at efSearch 128,
# 0.2-0.3 ms a query; M 16 reached 0.94 at the same efSearch.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
_SEARCH_THREADS = 1  # one query at a time: threads only cost on a busy 2-core machine


class DenseIndex(ABC):
    """Top-``k`` inner-product search over one segment's passage vectors."""

    name: ClassVar[str]
    # True: the backend's files hold the vectors, and ``vectors`` reads them there
    # (the segment then keeps no passage-vectors.npy of its own).
    holds_vectors: ClassVar[bool] = False

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    @classmethod
    def build(cls, vectors: np.ndarray, directory: Path) -> dict[str, Any]:
        """Write the backend's own files (if any) into ``directory``; its settings."""
        return {}

    @classmethod
    def load(
        cls, vectors: np.ndarray | None, directory: Path, settings: dict[str, Any]
    ) -> DenseIndex:
        """The backend over ``vectors`` (None for one that ``holds_vectors``)."""
        assert vectors is not None
        return cls(vectors)

    @property
    def count(self) -> int:
        return len(self.vectors)

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each ``len(queries) × k``, best first; ids -1 past the last hit.

        ``live`` (bool per vector), when given, leaves out the rows that are False.
        """

    def mapped_arrays(self) -> list[np.ndarray]:
        """Views of the memory the backend maps from its files (to touch at load)."""
        return []

    def close(self) -> None:
        """Let go of mapped files (the object is not used afterwards)."""
        self.vectors = self.vectors[:0]


class NumpyIndex(DenseIndex):
    """Exact search in NumPy: the reference for the other backends."""

    name = "numpy"

    def search(
        self, queries: np.ndarray, k: int, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.vectors)
        scores_out = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids_out = np.full((len(queries), k), -1, dtype=np.int64)
        if n == 0 or k == 0:
            return scores_out, ids_out
        scores = queries @ np.asarray(self.vectors).T
        if live is not None:
            scores[:, ~live] = -np.inf
        for row, values in enumerate(scores):
            take = min(k, n)
            top = np.argpartition(-values, take - 1)[:take] if take < n else np.arange(n)
            top = top[np.lexsort((top, -values[top]))]
            top = top[np.isfinite(values[top])]
            scores_out[row, : len(top)] = values[top]
            ids_out[row, : len(top)] = top
        return scores_out, ids_out


class ExactIndex(DenseIndex):
    """FAISS brute force over the memory-mapped vectors (no index file, no copy)."""

    name = "exact"

    def search(
        self, queries: np.ndarray, k: int, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if live is not None and not live.all():
            return NumpyIndex(self.vectors).search(queries, k, live)
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = len(self.vectors)
        if n == 0 or k == 0:
            return NumpyIndex(self.vectors).search(queries, k)
        with _threads(_SEARCH_THREADS):
            scores, ids = faiss.knn(
                queries, self.vectors, min(k, n), metric=faiss.METRIC_INNER_PRODUCT
            )
        return _pad(scores, ids, k)


class HNSWIndex(DenseIndex):
    """FAISS ``IndexHNSWFlat``: the graph in memory, the vectors mapped from its file."""

    name = "hnsw"
    holds_vectors = True

    def __init__(self, vectors: np.ndarray, index: Any, ef_search: int) -> None:
        super().__init__(vectors)
        self._index = index
        self.ef_search = ef_search

    @classmethod
    def build(cls, vectors: np.ndarray, directory: Path) -> dict[str, Any]:
        n, dimension = vectors.shape
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        with _threads(os.cpu_count() or 1):
            for start in range(0, n, 65536):
                index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
        path = directory / HNSW_FILE
        faiss.write_index(index, str(path))
        # The file ends with the vectors (the flat storage is written last): the store
        # reads them there, so they are on disk and in memory once.
        offset = path.stat().st_size - n * dimension * 4
        stored = _rows_at(path, offset, n, dimension)
        if n and not (
            np.array_equal(stored[0], vectors[0]) and np.array_equal(stored[-1], vectors[-1])
        ):
            raise RuntimeError(f"{HNSW_FILE}: the vectors are not where FAISS used to put them")
        return {
            "m": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "ef_search": HNSW_EF_SEARCH,
            "vectors_offset": offset,
        }

    @classmethod
    def load(
        cls, vectors: np.ndarray | None, directory: Path, settings: dict[str, Any]
    ) -> DenseIndex:
        path = directory / HNSW_FILE
        prefetch(path)
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        rows = _rows_at(path, int(settings["vectors_offset"]), index.ntotal, index.d)
        return cls(rows, index, int(settings["ef_search"]))

    def mapped_arrays(self) -> list[np.ndarray]:
        # FAISS maps the file itself; the vectors are read through its mapping too.
        storage = faiss.downcast_index(self._index.storage)
        count = self._index.ntotal * self._index.d
        return [faiss.rev_swig_ptr(storage.get_xb(), count)] if count else []

    def search(
        self, queries: np.ndarray, k: int, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        selector = None
        if live is not None and not live.all():
            bits = np.packbits(live, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(bits))
            params.sel = selector
        with _threads(_SEARCH_THREADS):
            scores, ids = self._index.search(queries, k, params=params)
        del selector
        return scores, ids.astype(np.int64)

    def close(self) -> None:
        super().close()
        self._index = None


def _rows_at(path: Path, offset: int, rows: int, dimension: int) -> np.ndarray:
    if rows == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    mapped = np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=(rows, dimension))
    return mapped.view(np.ndarray)


BACKENDS: dict[str, type[DenseIndex]] = {
    cls.name: cls for cls in (ExactIndex, HNSWIndex, NumpyIndex)
}


def backend(name: str) -> type[DenseIndex]:
    """The backend class called ``name`` (as a segment records it)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown dense backend {name!r} (this quotebot knows {', '.join(BACKENDS)})"
        ) from None


def choose(count: int, ann_min: int | None = None) -> str:
    """Exact search for a segment of ``count`` vectors below ``ann_min``, HNSW above."""
    threshold = ANN_MIN_VECTORS if ann_min is None else ann_min
    return "hnsw" if count >= threshold else "exact"


class _threads:
    """FAISS's OpenMP threads set for a block, then put back."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        self.before = faiss.omp_get_max_threads()
        if self.before != self.count:
            faiss.omp_set_num_threads(self.count)

    def __exit__(self, *_exc: object) -> None:
        if self.before != self.count:
            faiss.omp_set_num_threads(self.before)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] == k:
        return scores, ids.astype(np.int64)
    rows = len(scores)
    out_scores = np.full((rows, k), -np.inf, dtype=np.float32)
    out_ids = np.full((rows, k), -1, dtype=np.int64)
    out_scores[:, : scores.shape[1]] = scores
    out_ids[:, : ids.shape[1]] = ids
    return out_scores, out_ids

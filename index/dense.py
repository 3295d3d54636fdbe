"""Nearest passages by vector: one small interface, an exact and an approximate backend.

A segment of the store keeps its passage vectors in a memory-mapped ``.npy``; a
dense backend answers "the ``k`` vectors with the highest inner product with
this query" over them, skipping removed rows. Backends are picked by name
(:func:`backend`), and the name a segment was built with is recorded in its
``segment.json``, so it is loaded the way it was written:

- ``exact``: FAISS's brute-force k-NN (``faiss.knn``) straight over the mapped
  vectors: no file of its own and no second copy of the vectors;
- ``ivf``: a FAISS inverted-file index (``IndexIVFFlat``: the vectors grouped
  around ``nlist`` k-means centroids, ``nprobe`` groups read per query), read
  with ``IO_FLAG_MMAP`` so its lists stay on disk until a query touches them;
- ``numpy``: exact search in plain NumPy, the reference the tests hold the
  others to.

:func:`choose` picks exact below ``ANN_MIN_VECTORS`` and IVF above (README,
"How answers are found", says how both numbers were measured). A remote engine
(OpenSearch's k-NN, say) would be one more class with these four methods.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

# Below this many vectors a segment is searched exactly. Measured on 2 busy cores
# (README): exact search costs ~0.05 ms per 1,000 vectors, 2.5 ms at 50,000; IVF
# answers a query in 1-3 ms at any size here, but must be trained and is approximate.
ANN_MIN_VECTORS = 50_000
IVF_FILE = "ivf.faiss"
# IVF: nlist = IVF_LISTS_PER_SQRT × √n centroids, trained on IVF_TRAIN_PER_LIST vectors
# per centroid, and IVF_PROBE_SHARE of the lists (at least IVF_MIN_PROBES) read per
# query. Measured with scripts/ann_recall.py (README): on the scale benchmark's
# 100,000 tiny-model vectors, recall@10 against exact was 0.948 reading 2.5% of
# 1,265 lists, 0.985 reading 5.1%, 0.997 reading 10%.
IVF_LISTS_PER_SQRT = 4
IVF_TRAIN_PER_LIST = 40
IVF_TRAIN_ITERATIONS = 10
IVF_MIN_PROBES = 8
IVF_PROBE_SHARE = 0.06
_SEARCH_THREADS = 1  # one query at a time: threads only cost on a busy 2-core machine


class DenseIndex(ABC):
    """Top-``k`` inner-product search over one segment's passage vectors."""

    name: ClassVar[str]

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    @classmethod
    def build(cls, vectors: np.ndarray, directory: Path) -> dict[str, Any]:
        """Write the backend's own files (if any) into ``directory``; its settings."""
        return {}

    @classmethod
    def load(cls, vectors: np.ndarray, directory: Path, settings: dict[str, Any]) -> DenseIndex:
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


class IVFIndex(DenseIndex):
    """FAISS ``IndexIVFFlat``, inner product, memory-mapped from ``ivf.faiss``."""

    name = "ivf"

    def __init__(self, vectors: np.ndarray, index: Any, nprobe: int) -> None:
        super().__init__(vectors)
        self._index = index
        self.nprobe = nprobe

    @classmethod
    def build(cls, vectors: np.ndarray, directory: Path) -> dict[str, Any]:
        n, dimension = vectors.shape
        nlist = max(1, min(n // IVF_TRAIN_PER_LIST, round(IVF_LISTS_PER_SQRT * math.sqrt(n))))
        rng = np.random.default_rng(0)
        sample_size = min(n, nlist * IVF_TRAIN_PER_LIST)
        sample = np.sort(rng.choice(n, sample_size, replace=False)) if sample_size < n else None
        train = np.ascontiguousarray(vectors[sample] if sample is not None else vectors)
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = IVF_TRAIN_ITERATIONS
        index.cp.seed = 1234
        with _threads(os.cpu_count() or 1):
            index.train(train)
            for start in range(0, n, 65536):
                index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
        faiss.write_index(index, str(directory / IVF_FILE))
        nprobe = min(nlist, max(IVF_MIN_PROBES, math.ceil(IVF_PROBE_SHARE * nlist)))
        return {"nlist": nlist, "nprobe": nprobe}

    @classmethod
    def load(cls, vectors: np.ndarray, directory: Path, settings: dict[str, Any]) -> DenseIndex:
        index = faiss.read_index(str(directory / IVF_FILE), faiss.IO_FLAG_MMAP)
        if index.ntotal != len(vectors) or index.d != vectors.shape[1]:
            raise ValueError(
                f"{IVF_FILE} holds {index.ntotal} vectors of {index.d} dimensions, "
                f"the segment {len(vectors)} of {vectors.shape[1]}"
            )
        return cls(vectors, index, int(settings["nprobe"]))

    def search(
        self, queries: np.ndarray, k: int, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
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


BACKENDS: dict[str, type[DenseIndex]] = {
    cls.name: cls for cls in (ExactIndex, IVFIndex, NumpyIndex)
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
    """Exact search for a segment of ``count`` vectors below ``ann_min``, IVF above."""
    threshold = ANN_MIN_VECTORS if ann_min is None else ann_min
    return "ivf" if count >= threshold else "exact"


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

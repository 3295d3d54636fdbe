"""The plain methods quotebot is compared with, on the same index in the same run.

- BM25: bm25s over the passages, with the index's own tokenizer;
- dense: the passages nearest the question's MiniLM vector in FAISS;
- RRF: reciprocal rank fusion (k = 60) of the two lists' first 100.

Each gives a ranked list of passages; none has a "not found".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from index.backend import PassageStore as StoredIndex
from index.lexical import tokenize

DEPTH = 100
FUSION_K = 60

Baseline = Callable[[str, np.ndarray], list[int]]


def bm25(stored: StoredIndex) -> Baseline:
    def ranked(question: str, vector: np.ndarray) -> list[int]:
        ids, scores = stored.passage_bm25.search(list(dict.fromkeys(tokenize(question))), DEPTH)
        return [int(i) for i, score in zip(ids, scores, strict=True) if score > 0]

    return ranked


def dense(stored: StoredIndex) -> Baseline:
    def ranked(question: str, vector: np.ndarray) -> list[int]:
        k = min(DEPTH, len(stored.passages))
        _, ids = stored.faiss_index.search(vector.reshape(1, -1), k)
        return [int(i) for i in ids[0] if i >= 0]

    return ranked


def fusion(stored: StoredIndex) -> Baseline:
    lexical, semantic = bm25(stored), dense(stored)

    def ranked(question: str, vector: np.ndarray) -> list[int]:
        score: dict[int, float] = {}
        for ranking in (lexical(question, vector), semantic(question, vector)):
            for rank, i in enumerate(ranking):
                score[i] = score.get(i, 0.0) + 1.0 / (FUSION_K + rank + 1)
        return sorted(score, key=lambda i: -score[i])

    return ranked


BASELINES: dict[str, Callable[[StoredIndex], Baseline]] = {
    "BM25 (bm25s)": bm25,
    "dense (MiniLM + FAISS)": dense,
    "RRF of BM25 and dense": fusion,
}

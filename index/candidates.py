"""Which passages are worth ranking for a question: the first, cheap cut.

Three sources, because each misses what the others find: the passages nearest
the question's vector (they match its meaning in other words), the passages
BM25 ranks best (they hold its exact names and numbers), and the passages of
the articles BM25 ranks best as wholes (a paragraph that never names what it
is about, "Adopted with 85 votes in favor, this resolution…", is found through
its article, whose first paragraph does).

Of their union, a shortlist goes on to the learned ranker: the passages best
placed by reciprocal rank fusion of three cheap scores (the passage's cosine,
its best sentence's cosine, its BM25). Measured on the SQuAD dev16 questions,
the passage holding the answer is in the 30 best so fused for 99.7% of them,
and in all 24 seed questions; the ranker then reads 30 passages, not 150.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from index.arrays import concat_ranges, dot_rows, ranks
from index.backend import PassageStore
from index.windows import read_windows, sharpened

DENSE_CANDIDATES = 40
LEXICAL_CANDIDATES = 40
TOP_ARTICLES = 3
ARTICLE_PASSAGES = 60  # passages taken from one article at most (long articles)
SHORTLIST = 30
FUSION_K = 60  # reciprocal rank fusion's constant, as in Cormack et al. (2009)


@dataclass(frozen=True)
class Candidates:
    """The shortlisted passages, with the first-stage scores every feature builds on."""

    ids: np.ndarray  # passage numbers, best fused first
    dense: np.ndarray  # cosine of each passage's vector with the question's
    bm25: np.ndarray  # each passage's BM25 score for the question
    article_bm25: np.ndarray  # BM25 score of each passage's whole article
    best_bm25: float  # the best passage BM25 score in the whole corpus
    best_article_bm25: float
    sentence_cosines: tuple[np.ndarray, ...]  # per passage: the cosine of each sentence
    # per passage: the length of the sum of each two neighbouring sentence vectors, so
    # that two sentences read as one have the cosine (cos_a + cos_b) / length
    pair_lengths: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.ids)


def gather(
    stored: PassageStore,
    query_vector: np.ndarray,
    query_tokens: list[str],
    *,
    shortlist: int = SHORTLIST,
) -> Candidates:
    """The shortlisted candidates for one question, from the three sources above.

    Nothing here touches every passage: FAISS and BM25 each return their best
    few, and only the pooled passages are scored further.
    """
    n = len(stored.passages)
    if not n:
        empty = np.zeros(0)
        return Candidates(np.zeros(0, np.int64), empty, empty, empty, 0.0, 0.0, (), ())
    chosen: set[int] = set()
    _, found = stored.faiss_index.search(query_vector.reshape(1, -1), min(DENSE_CANDIDATES, n))
    chosen.update(int(i) for i in found[0] if i >= 0)
    top, top_scores = stored.passage_bm25.search(query_tokens, LEXICAL_CANDIDATES)
    chosen.update(int(i) for i, score in zip(top, top_scores, strict=True) if score > 0)
    articles, article_scores = stored.article_bm25.search(query_tokens, TOP_ARTICLES)
    for a, score in zip(articles.tolist(), article_scores.tolist(), strict=True):
        if score > 0:
            chosen.update(stored.passages_of(a)[:ARTICLE_PASSAGES])
    pool = np.fromiter(sorted(chosen), dtype=np.int64, count=len(chosen))
    if not len(pool):
        empty = np.zeros(0)
        return Candidates(pool, empty, empty, empty, 0.0, 0.0, (), ())
    dense = dot_rows(stored.passage_vectors[pool], query_vector)
    bm25 = stored.passage_bm25.scores_of(query_tokens, pool)
    # every pooled sentence's cosine in one product, then split per passage
    starts, ends = stored.sentence_starts[pool], stored.sentence_starts[pool + 1]
    rows = concat_ranges(starts, ends)
    block = stored.sentence_vectors[rows] if len(rows) else np.zeros((0, len(query_vector)))
    cosines = dot_rows(block, query_vector)
    counts = ends - starts
    offsets = np.concatenate([[0], np.cumsum(counts)])
    # each passage's best sentence (its passage cosine when it has no sentence)
    best_sentence = np.asarray(dense).copy()
    has = counts > 0
    if has.any():
        best_sentence[has] = np.maximum.reduceat(cosines, offsets[:-1][has])
    fused = _reciprocal_ranks(dense) + _reciprocal_ranks(best_sentence) + _reciprocal_ranks(bm25)
    keep = np.argsort(-fused, kind="stable")[:shortlist]
    ids = pool[keep]
    article_of = np.asarray(stored.passages.article_ids[ids], dtype=np.int64)
    # neighbouring sentences of the shortlisted passages: each pair's summed length
    kept_rows = concat_ranges(offsets[keep], offsets[keep + 1])
    kept = block[kept_rows]
    lengths = np.sqrt(np.maximum(2.0 + 2.0 * np.einsum("ij,ij->i", kept[:-1], kept[1:]), 1e-6))
    kept_offsets = np.concatenate([[0], np.cumsum(counts[keep])])
    return Candidates(
        ids=ids,
        dense=dense[keep],
        bm25=bm25[keep],
        article_bm25=stored.article_bm25.scores_of(query_tokens, article_of),
        best_bm25=float(top_scores[0]) if len(top_scores) else 0.0,
        best_article_bm25=float(article_scores[0]) if len(article_scores) else 0.0,
        sentence_cosines=_sharpened_cosines(
            stored,
            ids,
            [cosines[offsets[j] : offsets[j + 1]] if counts[j] else dense[j : j + 1] for j in keep],
            query_vector,
        ),
        # a passage's pairs run from its first row to the one before its last
        pair_lengths=tuple(
            lengths[a : max(a, b - 1)]
            for a, b in zip(kept_offsets[:-1].tolist(), kept_offsets[1:].tolist(), strict=True)
        ),
    )


def _sharpened_cosines(
    stored: PassageStore, ids: np.ndarray, cosines: list[np.ndarray], query: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The shortlisted passages' sentence cosines, a long sentence's raised towards its
    best window's (``index/windows.py``): every window of the shortlist in one product."""
    records = [stored.passage_windows(i) for i in ids.tolist()]
    sizes, local, scales, codes = read_windows(records, len(query))
    if not len(local):
        return tuple(cosines)
    lengths = np.fromiter((len(c) for c in cosines), dtype=np.int64, count=len(cosines))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    # a window of a sentence its passage does not have (a damaged record) is dropped
    owners = np.where(local < np.repeat(lengths, sizes), local + np.repeat(starts[:-1], sizes), -1)
    window_cosines = (codes @ query.astype(np.float32)) * scales
    flat = sharpened(np.concatenate(cosines), owners, window_cosines)
    return tuple(flat[a:b] for a, b in itertools.pairwise(starts.tolist()))


def _reciprocal_ranks(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (FUSION_K + ranks(scores))

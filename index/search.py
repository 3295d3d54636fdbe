"""Finding the passages that answer a question: vector → hit.

A passage is ranked on what it says *and* on what its article is about,
because news paragraphs lean on their article: "Adopted with 85 votes in
favor, this resolution…" never says which resolution; its article's first
paragraph does ("its 63rd resolution"). The signals, each measured on the
dev questions (see README, "How answers are found"):

- ``dense``: cosine of question and passage vectors (FAISS);
- ``sentence``: best cosine of the question with one of the passage's sentences;
- ``bm25``/``article_bm25``: BM25 of the passage and of its whole article, each
  divided by the best score for this question;
- ``coverage``: the IDF-weighted share of the question's words found in the
  passage, a word found only elsewhere in its article counting ``ARTICLE_CREDIT``;
- ``quantity``: for "how many/much" questions, whether a sentence has a number
  next to one of the question's words.

Candidates are the union of the FAISS neighbours, the BM25 best passages and
the passages of the best BM25 articles, so the whole corpus is never scored
densely at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from index.arrays import concat_ranges, dot_rows
from index.embeddings import Embedder
from index.lexical import tokenize
from index.store import StoredIndex

ARTICLE_CREDIT = 0.7
WEIGHTS = {
    "dense": 1.0,
    "sentence": 0.5,
    "bm25": 0.15,
    "article_bm25": 0.15,
    "coverage": 0.3,
    "quantity": 0.25,
}
DENSE_CANDIDATES = 100
LEXICAL_CANDIDATES = 100
TOP_ARTICLES = 5

_QUANTITY_QUESTION = re.compile(
    r"\bhow\s+(many|much|often|long|far|old)\b|\bwhat\s+(number|percentage|share|amount)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w[\w,.]*\w|\w")
_CARDINAL = re.compile(r"^\d[\d,.]*$")
_YEAR = re.compile(r"^(1[5-9]|20)\d\d$")
_DIGIT = re.compile(r"\d")
NUMBER_WINDOW = 3


@dataclass(frozen=True)
class Hit:
    """A ranked passage with its signals, and its sentences' own scores for highlighting."""

    passage: int
    score: float
    confidence: float
    signals: dict[str, float]
    sentence_scores: tuple[float, ...]


class Searcher:
    """Scores passages of a loaded index for a question.

    Everything a question needs that does not depend on the question (document
    frequencies, each passage's and article's words) was counted when the index
    was built and is read from it: the first question costs what any other does.
    """

    def __init__(self, stored: StoredIndex, embedder: Embedder) -> None:
        self.stored = stored
        self.embedder = embedder
        self._sentence_start = stored.sentence_starts
        # Filled lazily, then only read: safe to share between the bot's threads.
        self._sentence_token_cache: dict[int, list[frozenset[str]]] = {}
        self._number_cache: dict[int, list[list[frozenset[str]]]] = {}

    def idf(self, token: str) -> float:
        return self.stored.passage_bm25.idf(token)

    def _tokens_of_passage(self, i: int) -> frozenset[str]:
        return self.stored.passage_tokens(i)

    def _tokens_of_article(self, a: int) -> frozenset[str]:
        return self.stored.article_tokens(a)

    def search(self, question: str, limit: int = 20) -> list[Hit]:
        """The best ``limit`` passages for ``question``, best first."""
        if not len(self.stored.passages):
            return []
        query_vector = self.embedder.encode_query(question)
        query_tokens = list(dict.fromkeys(tokenize(question)))
        passage_bm25, article_bm25_index = self.stored.passage_bm25, self.stored.article_bm25
        top_passages, top_scores = passage_bm25.search(query_tokens, LEXICAL_CANDIDATES)
        top_articles, article_scores = article_bm25_index.search(query_tokens, TOP_ARTICLES)
        candidates = self._candidates(query_vector, top_passages, top_articles)
        if not candidates:
            return []
        ids = np.fromiter(sorted(candidates), dtype=np.int64)
        dense = dot_rows(self.stored.passage_vectors[ids], query_vector)
        best = float(top_scores[0]) if len(top_scores) else 0.0
        bm25 = passage_bm25.scores_of(query_tokens, ids) / (best or 1.0)
        article_of = self.stored.passages.article_ids[ids]
        best_article = float(article_scores[0]) if len(article_scores) else 0.0
        article_bm25 = article_bm25_index.scores_of(query_tokens, article_of) / (
            best_article or 1.0
        )
        weights = [self.idf(t) for t in query_tokens]
        coverage = self._coverage(query_tokens, weights, ids, article_of)
        rows = concat_ranges(self._sentence_start[ids], self._sentence_start[ids + 1])
        sentence_scores = dot_rows(self.stored.sentence_vectors[rows], query_vector)
        per_passage = self._sentence_start[ids + 1] - self._sentence_start[ids]
        bounds = np.concatenate([[0], np.cumsum(per_passage)]).tolist()
        quantity_words = (
            {t for t in query_tokens if not t[0].isdigit()}
            if _QUANTITY_QUESTION.search(question)
            else None
        )

        scored: list[tuple[float, int, dict[str, float], np.ndarray, list[float]]] = []
        for row, i in enumerate(ids.tolist()):
            per_sentence = sentence_scores[bounds[row] : bounds[row + 1]]
            per_quantity = (
                self._quantity(i, quantity_words)
                if quantity_words is not None
                else [0.0] * len(per_sentence)
            )
            signals = {
                "dense": float(dense[row]),
                "sentence": float(per_sentence.max()) if len(per_sentence) else float(dense[row]),
                "bm25": float(bm25[row]),
                "article_bm25": float(article_bm25[row]),
                "coverage": float(coverage[row]),
                "quantity": max(per_quantity, default=0.0),
            }
            score = sum(WEIGHTS[k] * v for k, v in signals.items())
            scored.append((score, i, signals, per_sentence, per_quantity))
        scored.sort(key=lambda item: -item[0])

        hits: list[Hit] = []
        for score, i, signals, per_sentence, per_quantity in scored[:limit]:
            # Which sentence to highlight: its own similarity, its share of the
            # question's words, and a number next to what a "how many" asks about.
            sentence_scores = tuple(
                float(per_sentence[j])
                + WEIGHTS["quantity"] * per_quantity[j]
                + 0.2 * self._sentence_overlap(i, j, query_tokens, weights)
                for j in range(len(per_sentence))
            )
            hits.append(Hit(i, score, confidence(signals), signals, sentence_scores))
        return hits

    def _candidates(
        self, query_vector: np.ndarray, passages: np.ndarray, articles: np.ndarray
    ) -> set[int]:
        """Passages worth scoring: dense neighbours, lexical matches, best articles' passages."""
        n = len(self.stored.passages)
        index = self.stored.faiss_index
        candidates: set[int] = set()
        if index is not None:
            _, ids = index.search(query_vector.reshape(1, -1), min(DENSE_CANDIDATES, n))
            candidates.update(int(i) for i in ids[0] if i >= 0)
        else:
            candidates.update(range(n))
        candidates.update(passages.tolist())
        for a in articles.tolist():
            candidates.update(self.stored.passages_of(a))
        return candidates

    def _coverage(
        self, query_tokens: list[str], weights: list[float], ids: np.ndarray, articles: np.ndarray
    ) -> np.ndarray:
        """Per passage: the IDF-weighted share of the question's words it (or its article) has."""
        total = sum(weights)
        if not total:
            return np.zeros(len(ids))
        own = self.stored.passage_bm25.holding(query_tokens, ids)
        distinct, which = np.unique(articles, return_inverse=True)  # whole articles are long
        article = self.stored.article_bm25.holding(query_tokens, distinct)[which]
        credit = np.where(own, 1.0, np.where(article, ARTICLE_CREDIT, 0.0))
        return credit @ np.asarray(weights, dtype=np.float64) / total

    def _sentence_overlap(
        self, i: int, j: int, query_tokens: list[str], weights: list[float]
    ) -> float:
        total = sum(weights)
        if not total:
            return 0.0
        words = self._sentence_tokens(i)[j]
        return sum(w for t, w in zip(query_tokens, weights, strict=True) if t in words) / total

    def _sentence_tokens(self, i: int) -> list[frozenset[str]]:
        tokens = self._sentence_token_cache.get(i)
        if tokens is None:
            passage = self.stored.passages[i]
            tokens = [frozenset(tokenize(passage.text[a:b])) for a, b in passage.sentences]
            self._sentence_token_cache[i] = tokens
        return tokens

    def _numbers_with_neighbours(self, i: int) -> list[list[frozenset[str]]]:
        """Per sentence, for each cardinal number (not a year): the stems of its neighbours."""
        found = self._number_cache.get(i)
        if found is None:
            passage = self.stored.passages[i]
            found = []
            for a, b in passage.sentences:
                sentence = passage.text[a:b]
                if not _DIGIT.search(sentence):
                    found.append([])  # no number: nothing to stem
                    continue
                words = _WORD.findall(sentence)
                stem = _stem_of(words)
                found.append(
                    [
                        frozenset(stem(k) for k in range(max(0, j - NUMBER_WINDOW), j))
                        | frozenset(
                            stem(k) for k in range(j + 1, min(len(words), j + 1 + NUMBER_WINDOW))
                        )
                        for j, word in enumerate(words)
                        if _CARDINAL.match(word) and not _YEAR.match(word.replace(",", ""))
                    ]
                )
            self._number_cache[i] = found
        return found

    def _quantity(self, i: int, question_words: set[str]) -> list[float]:
        """Per sentence: 1 where a cardinal number stands next to one of the question's words."""
        return [
            1.0 if any(question_words & near for near in numbers) else 0.0
            for numbers in self._numbers_with_neighbours(i)
        ]


def _stem_of(words: list[str]) -> Callable[[int], str]:
    """The first token of word ``k`` ("" for a stopword), each worked out once."""
    stems: dict[int, str] = {}

    def stem(k: int) -> str:
        if k not in stems:
            stems[k] = (tokenize(words[k]) or [""])[0]
        return stems[k]

    return stem


def confidence(signals: dict[str, float]) -> float:
    """How sure a hit answers, on an absolute 0-1 scale, for the "not found" decision.

    Only absolute signals count here (BM25 divided by its best is always 1 for
    the best passage, however poor): the best sentence's cosine, the share of
    the question's words the passage or its article holds, and, for "how many"
    questions, a number standing next to what was asked about.
    """
    return (
        0.5 * max(signals["sentence"], 0.0) + 0.5 * signals["coverage"] + 0.1 * signals["quantity"]
    )

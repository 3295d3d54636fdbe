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

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from index.embeddings import Embedder
from index.lexical import tokenize
from index.store import StoredIndex

ARTICLE_CREDIT = 0.7
WEIGHTS = {
    "dense": 1.0,
    "sentence": 0.5,
    "bm25": 0.15,
    "article_bm25": 0.15,
    "coverage": 0.5,
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
    """Scores passages of a loaded index for a question."""

    def __init__(self, stored: StoredIndex, embedder: Embedder) -> None:
        self.stored = stored
        self.embedder = embedder
        starts = np.zeros(len(stored.passages) + 1, dtype=np.int64)
        np.cumsum([len(p.sentences) for p in stored.passages], out=starts[1:])
        self._sentence_start = starts
        self._article_passages: dict[int, list[int]] = {}
        for i, passage in enumerate(stored.passages):
            self._article_passages.setdefault(passage.article, []).append(i)
        self._passage_tokens: dict[int, frozenset[str]] = {}
        self._article_tokens: dict[int, frozenset[str]] = {}

    @cached_property
    def _document_frequency(self) -> dict[str, int]:
        df: dict[str, int] = {}
        for i in range(len(self.stored.passages)):
            for token in self._tokens_of_passage(i):
                df[token] = df.get(token, 0) + 1
        return df

    def idf(self, token: str) -> float:
        n = len(self.stored.passages)
        df = self._document_frequency.get(token, 0)
        return math.log((n - df + 0.5) / (df + 0.5) + 1.0)

    def _tokens_of_passage(self, i: int) -> frozenset[str]:
        tokens = self._passage_tokens.get(i)
        if tokens is None:
            tokens = self._passage_tokens[i] = frozenset(tokenize(self.stored.passages[i].text))
        return tokens

    def _tokens_of_article(self, a: int) -> frozenset[str]:
        tokens = self._article_tokens.get(a)
        if tokens is None:
            article = self.stored.articles[a]
            tokens = self._article_tokens[a] = frozenset(
                tokenize(f"{article.title}\n{article.body}")
            )
        return tokens

    def search(self, question: str, limit: int = 20) -> list[Hit]:
        """The best ``limit`` passages for ``question``, best first."""
        if not self.stored.passages:
            return []
        query_vector = self.embedder.encode_query(question)
        query_tokens = list(dict.fromkeys(tokenize(question)))
        candidates = self._candidates(query_vector, query_tokens)
        if not candidates:
            return []
        ids = np.fromiter(sorted(candidates), dtype=np.int64)
        dense = self.stored.passage_vectors[ids] @ query_vector
        bm25_all = self.stored.passage_bm25.scores(query_tokens)
        bm25 = bm25_all[ids] / (float(bm25_all.max()) or 1.0)
        article_all = self.stored.article_bm25.scores(query_tokens)
        article_of = np.array([self.stored.passages[i].article for i in ids])
        article_bm25 = article_all[article_of] / (float(article_all.max()) or 1.0)
        weights = [self.idf(t) for t in query_tokens]
        is_quantity = bool(_QUANTITY_QUESTION.search(question))
        quantity_words = {t for t in query_tokens if not t[0].isdigit()}

        hits: list[Hit] = []
        for row, i in enumerate(ids):
            i = int(i)
            s_from, s_to = self._sentence_start[i], self._sentence_start[i + 1]
            per_sentence = self.stored.sentence_vectors[s_from:s_to] @ query_vector
            sentence = float(per_sentence.max()) if len(per_sentence) else float(dense[row])
            coverage = self._coverage(query_tokens, weights, i)
            quantity = 0.0
            sentence_quantity = [0.0] * len(per_sentence)
            if is_quantity:
                sentence_quantity = self._quantity(i, quantity_words)
                quantity = max(sentence_quantity, default=0.0)
            signals = {
                "dense": float(dense[row]),
                "sentence": sentence,
                "bm25": float(bm25[row]),
                "article_bm25": float(article_bm25[row]),
                "coverage": coverage,
                "quantity": quantity,
            }
            score = sum(WEIGHTS[k] * v for k, v in signals.items())
            sentence_scores = tuple(
                float(per_sentence[j])
                + WEIGHTS["quantity"] * sentence_quantity[j]
                + 0.2 * self._sentence_overlap(i, j, query_tokens, weights)
                for j in range(len(per_sentence))
            )
            hits.append(Hit(i, score, confidence(signals), signals, sentence_scores))
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]

    def _candidates(self, query_vector: np.ndarray, query_tokens: list[str]) -> set[int]:
        """Passages worth scoring: dense neighbours, lexical matches, best articles' passages."""
        n = len(self.stored.passages)
        index = self.stored.faiss_index
        candidates: set[int] = set()
        if index is not None:
            _, ids = index.search(query_vector.reshape(1, -1), min(DENSE_CANDIDATES, n))
            candidates.update(int(i) for i in ids[0] if i >= 0)
        else:
            candidates.update(range(n))
        bm25 = self.stored.passage_bm25.scores(query_tokens)
        if bm25.any():
            top = np.argsort(-bm25)[:LEXICAL_CANDIDATES]
            candidates.update(int(i) for i in top if bm25[i] > 0)
        articles = self.stored.article_bm25.scores(query_tokens)
        if articles.any():
            for a in np.argsort(-articles)[:TOP_ARTICLES]:
                if articles[a] > 0:
                    candidates.update(self._article_passages.get(int(a), []))
        return candidates

    def _coverage(self, query_tokens: list[str], weights: list[float], i: int) -> float:
        total = sum(weights)
        if not total:
            return 0.0
        own = self._tokens_of_passage(i)
        article = self._tokens_of_article(self.stored.passages[i].article)
        got = sum(
            w * (1.0 if t in own else ARTICLE_CREDIT if t in article else 0.0)
            for t, w in zip(query_tokens, weights, strict=True)
        )
        return got / total

    def _sentence_overlap(
        self, i: int, j: int, query_tokens: list[str], weights: list[float]
    ) -> float:
        total = sum(weights)
        if not total:
            return 0.0
        a, b = self.stored.passages[i].sentences[j]
        words = set(tokenize(self.stored.passages[i].text[a:b]))
        return sum(w for t, w in zip(query_tokens, weights, strict=True) if t in words) / total

    def _quantity(self, i: int, question_words: set[str]) -> list[float]:
        """Per sentence: 1 where a cardinal number stands next to one of the question's words."""
        passage = self.stored.passages[i]
        out: list[float] = []
        for a, b in passage.sentences:
            words = _WORD.findall(passage.text[a:b])
            stems = [(tokenize(w) or [""])[0] for w in words]
            found = 0.0
            for j, word in enumerate(words):
                if _CARDINAL.match(word) and not _YEAR.match(word.replace(",", "")):
                    near = (
                        stems[max(0, j - NUMBER_WINDOW) : j] + stems[j + 1 : j + 1 + NUMBER_WINDOW]
                    )
                    if question_words.intersection(near):
                        found = 1.0
                        break
            out.append(found)
        return out


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

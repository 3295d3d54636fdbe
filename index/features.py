"""What is measured of each candidate passage: one row of numbers per passage.

The learned ranker (:mod:`index.ranker`) and the "not found" model
(:mod:`index.answerability`) read these rows; neither sees the text. Every
feature is on a scale that does not depend on the corpus's size or the
question's length (cosines, shares of the question's weight, BM25 over its
best or over its ceiling, ranks), so a model trained on one corpus reads
another the same way. How the question is written (case, a question mark)
changes none of them but the cosines.

Features, per candidate passage:

- ``dense``, ``sentence``: cosine of the question with the passage, and with its
  best sentence; ``sentence_window``: with its best two neighbouring sentences
  read as one; ``sentence_joint``: the best sentence's cosine plus its share of
  the question's words (one sentence that has both); ``sentence_joint_lead``:
  the same with the words of the article's title and opening passage counted
  as the sentence's own; ``*_gap``: below the best candidate's.
- ``bm25``: BM25 over the best passage's; ``bm25_ceiling``: BM25 over the most
  any passage could score (every word matched often), an absolute 0-1;
  ``article_bm25``: the whole article's BM25 over the best article's.
- ``coverage``: the share of the question's weight (IDF) on words the passage
  holds; ``coverage_sentence``/``coverage_window``: the same for its best sentence
  and best two neighbouring sentences; ``coverage_article``/``coverage_title``:
  for the passage's article and title (news paragraphs lean on their article);
  ``coverage_lead``: for the passage with its article's title and opening
  passage, where a news article says what it is about (the "63rd resolution"
  a later "85 votes" paragraph never names).
- ``bigrams``: the share of the question's word pairs found side by side.
- ``numbers``: the share of the question's numbers in the passage;
  ``numbers_missing``: the share its article lacks.
- ``answer_type``: the best sentence holds what the question asks for and does
  not itself say (a number for "how many", a year or date for "when", a name
  for "who"/"where"); ``answer_type_passage``: any of its sentences does;
  ``quantity``: a number standing next to one of the words a "how many"
  question counts ("85 votes").
- ``first_passage``: the article's opening passage (where news states its facts).
- ``dense_rank``/``bm25_rank``: 1/(1+rank) among the candidates.
- ``missing_peak``/``missing_peak_article``: the weight of the rarest question
  word the passage (its article) lacks, over the rarest word's;
  ``missing_words_article``: the share of the question's words its article lacks.
- ``asks_quantity``/``asks_time``/``asks_name``: what kind of answer the
  question wants, so the ranker can weigh ``answer_type`` and ``quantity`` by it.
- ``unknown``: the share of the question's weight on words no passage has, and
  ``sentence_spread``: how far the best sentence stands above the candidates'
  average, in standard deviations (the same for every candidate: they are for
  the "not found" model; an off-topic question finds many passages equally
  close and none close).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.analysis import PassageWords
from index.arrays import ranks
from index.backend import PassageStore
from index.candidates import Candidates
from index.lexicon import CACHED_PASSAGES, Lexicon
from index.question import Question
from index.recent import Recent

BM25_K1 = 1.5  # bm25s's default, used at build

FEATURES: tuple[str, ...] = (
    "dense",
    "dense_gap",
    "sentence",
    "sentence_gap",
    "sentence_window",
    "sentence_joint",
    "sentence_joint_gap",
    "sentence_joint_lead",
    "sentence_joint_lead_gap",
    "bm25",
    "bm25_ceiling",
    "article_bm25",
    "coverage",
    "coverage_sentence",
    "coverage_window",
    "coverage_article",
    "coverage_title",
    "coverage_lead",
    "coverage_gap",
    "bigrams",
    "numbers",
    "numbers_missing",
    "answer_type",
    "answer_type_passage",
    "quantity",
    "first_passage",
    "dense_rank",
    "bm25_rank",
    "missing_peak",
    "missing_peak_article",
    "missing_words_article",
    "unknown",
    "sentence_spread",
    "asks_quantity",
    "asks_time",
    "asks_name",
)
COLUMN = {name: j for j, name in enumerate(FEATURES)}
# Which way each feature can only push a passage, other things equal: more of the
# question found, or a closer sentence, never makes a passage a worse answer. The ranker
# is held to these (monotone constraints), so what it learns on one kind of text cannot
# turn into the opposite on another; 0 leaves a feature free.
DIRECTION: dict[str, int] = {
    **{name: 1 for name in FEATURES},
    **{name: -1 for name in FEATURES if name.startswith(("missing_", "numbers_missing"))},
    **{
        name: 0
        for name in (
            "first_passage", "unknown", "sentence_spread",
            "asks_quantity", "asks_time", "asks_name",
        )
    },
}  # fmt: skip
# How the sentences of a passage are ranked for highlighting: their own cosine, their
# share of the question's words and, for "how many", a number beside a counted word.
HIGHLIGHT_COVERAGE = 0.2
HIGHLIGHT_QUANTITY = 0.25


@dataclass(frozen=True)
class FeatureRows:
    """The feature matrix of one question's candidates, and each passage's sentence scores."""

    ids: np.ndarray
    matrix: np.ndarray  # len(ids) x len(FEATURES)
    sentence_scores: tuple[tuple[float, ...], ...]

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, COLUMN[name]]


def compute(
    question: Question,
    candidates: Candidates,
    lexicon: Lexicon,
    pairs: PairCosines,
) -> FeatureRows:
    """The feature rows of ``candidates`` for ``question``."""
    n = len(candidates)
    matrix = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return FeatureRows(candidates.ids, matrix, ())
    weight = dict(zip(question.tokens, question.weights.tolist(), strict=True))
    total = sum(weight.values()) or 1.0
    peak = max(weight.values(), default=0.0) or 1.0
    ceiling = total * (BM25_K1 + 1.0)
    counted = (
        {t for t in question.tokens if not t[:1].isdigit()}
        if question.kind == "quantity"
        else set()
    )
    numbers = question.numbers
    asked = frozenset(question.tokens)
    col = COLUMN
    sentence_scores: list[tuple[float, ...]] = []
    article_of = {i: lexicon.article_of(i) for i in candidates.ids.tolist()}
    held = lexicon.held_by_articles(question.tokens, article_of.values())
    leads = lexicon.held_by_leads(question.tokens, article_of.values())
    for r, i in enumerate(candidates.ids.tolist()):
        article = article_of[i]
        words = lexicon.passage(i)
        article_words = held[article]  # the question's words the article holds
        cos = candidates.sentence_cosines[r]
        per_cov = [_share(weight, s) / total for s in words.sentences]
        if len(per_cov) != len(cos):  # a passage without sentence spans: one "sentence"
            per_cov = [_share(weight, words.tokens) / total] * len(cos)
        cov = np.asarray(per_cov)
        joint = cos + cov
        best = int(np.argmax(joint))
        row = matrix[r]
        row[col["dense"]] = candidates.dense[r]
        row[col["sentence"]] = float(cos.max())
        row[col["sentence_joint"]] = float(joint[best])
        lead = leads[article]  # the question's words its article's title and lead hold
        row[col["sentence_joint_lead"]] = max(
            float(c) + _share_either(weight, sentence, lead) / total
            for c, sentence in zip(cos, words.sentences or (words.tokens,), strict=False)
        )
        if len(cos) > 1:
            pair = pairs.of(i)
            row[col["sentence_window"]] = float(((cos[:-1] + cos[1:]) / pair).max())
            row[col["coverage_window"]] = (
                max(
                    _share_either(weight, a, b)
                    for a, b in zip(words.sentences, words.sentences[1:], strict=False)
                )
                / total
            )
        else:
            row[col["sentence_window"]] = float(cos.max())
            row[col["coverage_window"]] = float(cov.max())
        row[col["bm25"]] = candidates.bm25[r] / (candidates.best_bm25 or 1.0)
        row[col["bm25_ceiling"]] = candidates.bm25[r] / ceiling
        row[col["article_bm25"]] = candidates.article_bm25[r] / (
            candidates.best_article_bm25 or 1.0
        )
        row[col["coverage"]] = _share(weight, words.tokens) / total
        row[col["coverage_sentence"]] = float(cov.max())
        row[col["coverage_article"]] = _share(weight, article_words) / total
        row[col["coverage_title"]] = _share(weight, lexicon.title(article)) / total
        row[col["coverage_lead"]] = _share_either(weight, words.tokens, lead) / total
        if question.bigrams:
            row[col["bigrams"]] = words.pairs_found(question.bigrams) / len(question.bigrams)
        if numbers:
            row[col["numbers"]] = len(numbers & words.tokens) / len(numbers)
            row[col["numbers_missing"]] = len(numbers - article_words) / len(numbers)
        row[col["answer_type"]] = _answer_type(question.kind, asked, words, best)
        row[col["answer_type_passage"]] = max(
            (_answer_type(question.kind, asked, words, j) for j in range(len(words.sentences))),
            default=0.0,
        )
        quantity = (
            [
                1.0 if any(counted & near for near in neighbours) else 0.0
                for neighbours in words.number_neighbours
            ]
            if counted and len(words.number_neighbours) == len(cos)
            else [0.0] * len(cos)
        )
        row[col["quantity"]] = max(quantity)
        row[col["first_passage"]] = 1.0 if lexicon.is_first(i) else 0.0
        if weight:
            row[col["missing_peak"]] = _peak_missing(weight, words.tokens) / peak
            row[col["missing_peak_article"]] = _peak_missing(weight, article_words) / peak
            row[col["missing_words_article"]] = sum(
                1 for t in weight if t not in article_words
            ) / len(weight)
        sentence_scores.append(
            tuple(
                float(cos[j]) + HIGHLIGHT_QUANTITY * quantity[j] + HIGHLIGHT_COVERAGE * per_cov[j]
                for j in range(len(cos))
            )
        )
    for name, of in (("dense_rank", "dense"), ("bm25_rank", "bm25")):
        matrix[:, col[name]] = 1.0 / (1.0 + ranks(matrix[:, col[of]]))
    for name, of in (
        ("dense_gap", "dense"),
        ("sentence_gap", "sentence"),
        ("sentence_joint_gap", "sentence_joint"),
        ("sentence_joint_lead_gap", "sentence_joint_lead"),
        ("coverage_gap", "coverage"),
    ):
        matrix[:, col[name]] = matrix[:, col[of]] - matrix[:, col[of]].max()
    sentence = matrix[:, col["sentence"]]
    matrix[:, col["sentence_spread"]] = (sentence.max() - sentence.mean()) / (sentence.std() + 0.01)
    matrix[:, col["unknown"]] = question.unknown_share
    matrix[:, col["asks_quantity"]] = question.kind == "quantity"
    matrix[:, col["asks_time"]] = question.kind == "time"
    matrix[:, col["asks_name"]] = question.kind in ("person", "place")
    return FeatureRows(candidates.ids, matrix, tuple(sentence_scores))


class PairCosines:
    """Per passage, the length of the sum of each two neighbouring sentence vectors.

    The cosine of the question with two sentences read as one is
    ``(cos_a + cos_b) / |a + b|`` for unit vectors ``a`` and ``b``; the norms are
    worked out the first time a passage is a candidate, and kept while it is recent.
    """

    def __init__(self, stored: PassageStore) -> None:
        self._stored = stored
        self._norms: Recent[int, np.ndarray] = Recent(CACHED_PASSAGES)

    def of(self, i: int) -> np.ndarray:
        norms = self._norms.get(i)
        if norms is None:
            rows = self._stored.sentence_rows(i)
            block = np.asarray(self._stored.sentence_vectors[rows], np.float32)
            dots = np.einsum("ij,ij->i", block[:-1], block[1:])
            norms = self._norms.put(i, np.sqrt(np.maximum(2.0 + 2.0 * dots, 1e-6)))
        return norms


def _share(weight: dict[str, float], found: frozenset[str]) -> float:
    return sum(w for t, w in weight.items() if t in found)


def _share_either(weight: dict[str, float], one: frozenset[str], other: frozenset[str]) -> float:
    """``_share(weight, one | other)`` without building the union."""
    return sum(w for t, w in weight.items() if t in one or t in other)


def _peak_missing(weight: dict[str, float], found: frozenset[str]) -> float:
    return max((w for t, w in weight.items() if t not in found), default=0.0)


def _answer_type(kind: str, asked: frozenset[str], words: PassageWords, j: int) -> float:
    """Whether sentence ``j`` holds the kind of thing asked for, beyond what the question says."""
    if j >= len(words.sentences):
        return 0.0
    if kind == "quantity":
        return 1.0 if words.cardinals[j] - asked else 0.0
    if kind == "time":
        return 1.0 if words.dated[j] else 0.0
    if kind in ("person", "place"):
        return 1.0 if words.names[j] - asked else 0.0
    return 0.0

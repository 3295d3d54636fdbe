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

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from index.analysis import PassageWords
from index.arrays import ranks
from index.candidates import Candidates
from index.lexicon import Lexicon
from index.question import Question

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


@dataclass(frozen=True)
class FeatureRows:
    """The feature matrix of one question's candidates, and each passage's sentence signals."""

    ids: np.ndarray
    matrix: np.ndarray  # len(ids) x len(FEATURES)
    # per passage: one row per sentence, columns index.highlight.SENTENCE_SIGNALS
    sentence_signals: tuple[np.ndarray, ...]

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, COLUMN[name]]


def compute(
    question: Question,
    candidates: Candidates,
    lexicon: Lexicon,
) -> FeatureRows:
    """The feature rows of ``candidates`` for ``question``."""
    n = len(candidates)
    matrix = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return FeatureRows(candidates.ids, matrix, ())
    weight = dict(zip(question.tokens, question.weights.tolist(), strict=True))
    words_of = _QuestionWords(weight)
    share, mask_of = words_of.share, words_of.mask
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
    sentence_signals: list[np.ndarray] = []
    article_of = {i: lexicon.article_of(i) for i in candidates.ids.tolist()}
    # per article, the question's words it holds, and its title and lead hold, as masks
    held = {
        a: mask_of(w)
        for a, w in lexicon.held_by_articles(question.tokens, article_of.values()).items()
    }
    leads = {
        a: mask_of(w)
        for a, w in lexicon.held_by_leads(question.tokens, article_of.values()).items()
    }
    titles = {a: mask_of(lexicon.title(a)) for a in held}
    for r, i in enumerate(candidates.ids.tolist()):
        article = article_of[i]
        words = lexicon.passage(i)
        article_mask = held[article]
        lead = leads[article]
        cos_array = candidates.sentence_cosines[r]
        cos = cos_array.tolist()
        sentences = [mask_of(s) for s in words.sentences]
        passage = mask_of(words.sequence)
        per_cov = [share(m) / total for m in sentences]
        if len(per_cov) != len(cos):  # a passage without sentence spans: one "sentence"
            per_cov = [share(passage) / total] * len(cos)
        joint = [c + v for c, v in zip(cos, per_cov, strict=True)]
        best = max(range(len(joint)), key=joint.__getitem__)
        row = matrix[r]
        row[col["dense"]] = candidates.dense[r]
        row[col["sentence"]] = max(cos)
        row[col["sentence_joint"]] = joint[best]
        row[col["sentence_joint_lead"]] = max(
            c + share(m | lead) / total for c, m in zip(cos, sentences or [passage], strict=False)
        )
        if len(cos) > 1:
            pair = candidates.pair_lengths[r]
            row[col["sentence_window"]] = float(((cos_array[:-1] + cos_array[1:]) / pair).max())
            row[col["coverage_window"]] = (
                max(share(a | b) for a, b in itertools.pairwise(sentences)) / total
            )
        else:
            row[col["sentence_window"]] = max(cos)
            row[col["coverage_window"]] = max(per_cov)
        row[col["bm25"]] = candidates.bm25[r] / (candidates.best_bm25 or 1.0)
        row[col["bm25_ceiling"]] = candidates.bm25[r] / ceiling
        row[col["article_bm25"]] = candidates.article_bm25[r] / (
            candidates.best_article_bm25 or 1.0
        )
        row[col["coverage"]] = share(passage) / total
        row[col["coverage_sentence"]] = max(per_cov)
        row[col["coverage_article"]] = share(article_mask) / total
        row[col["coverage_title"]] = share(titles[article]) / total
        row[col["coverage_lead"]] = share(passage | lead) / total
        if question.bigrams:
            row[col["bigrams"]] = words.pairs_found(question.bigrams) / len(question.bigrams)
        if numbers:
            row[col["numbers"]] = len(numbers.intersection(words.sequence)) / len(numbers)
            row[col["numbers_missing"]] = sum(
                1 for t in numbers if not article_mask & words_of.bit.get(t, 0)
            ) / len(numbers)
        types = [_answer_type(question.kind, asked, words, j) for j in range(len(words.sentences))]
        row[col["answer_type"]] = types[best] if best < len(types) else 0.0
        row[col["answer_type_passage"]] = max(types, default=0.0)
        quantity = (
            [
                1.0 if any(not counted.isdisjoint(near) for near in neighbours) else 0.0
                for neighbours in words.number_neighbours
            ]
            if counted and len(words.number_neighbours) == len(cos)
            else [0.0] * len(cos)
        )
        row[col["quantity"]] = max(quantity)
        row[col["first_passage"]] = 1.0 if lexicon.is_first(i) else 0.0
        if weight:
            row[col["missing_peak"]] = words_of.peak_missing(passage) / peak
            row[col["missing_peak_article"]] = words_of.peak_missing(article_mask) / peak
            row[col["missing_words_article"]] = words_of.missing(article_mask) / len(weight)
        if len(types) != len(cos):
            types = [0.0] * len(cos)
        # columns: SENTENCE_SIGNALS (cosine, quantity, coverage, answer_type)
        sentence_signals.append(np.array([cos, quantity, per_cov, types], dtype=np.float64).T)
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
    return FeatureRows(candidates.ids, matrix, tuple(sentence_signals))


class _QuestionWords:
    """The question's words as bits, so that "which of them does this hold" is one integer.

    A sentence, passage, article or lead holding some of the question's words is
    a mask; unions are ``|``, and the weight of a mask (its share of the question)
    is summed once per question, in the question's word order, so it is the same
    float whichever way the mask was made.
    """

    def __init__(self, weight: dict[str, float]) -> None:
        self.words = frozenset(weight)
        self.bit = {t: 1 << j for j, t in enumerate(weight)}
        self._weights = list(weight.values())
        self._shares: dict[int, float] = {}
        self._peaks: dict[int, float] = {}

    def mask(self, found: Iterable[str]) -> int:
        """Which of the question's words ``found`` holds."""
        bit = self.bit
        return sum(bit[t] for t in self.words.intersection(found))

    def share(self, mask: int) -> float:
        """The summed weight of the words in ``mask``."""
        value = self._shares.get(mask)
        if value is None:
            value = self._shares[mask] = sum(
                w for j, w in enumerate(self._weights) if mask >> j & 1
            )
        return value

    def peak_missing(self, mask: int) -> float:
        """The weight of the heaviest word not in ``mask`` (0 when none is missing)."""
        value = self._peaks.get(mask)
        if value is None:
            value = self._peaks[mask] = max(
                (w for j, w in enumerate(self._weights) if not mask >> j & 1), default=0.0
            )
        return value

    def missing(self, mask: int) -> int:
        """How many of the question's words are not in ``mask``."""
        return len(self._weights) - mask.bit_count()


def _answer_type(kind: str, asked: frozenset[str], words: PassageWords, j: int) -> float:
    """Whether sentence ``j`` holds the kind of thing asked for, beyond what the question says."""
    if j >= len(words.sentences):
        return 0.0
    if kind == "quantity":
        return 0.0 if asked.issuperset(words.cardinals[j]) else 1.0
    if kind == "time":
        return 1.0 if words.dated[j] else 0.0
    if kind in ("person", "place"):
        return 0.0 if asked.issuperset(words.names[j]) else 1.0
    return 0.0

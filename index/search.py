"""Finding the passages that answer a question: vector → hit.

The way a question takes, one module each::

    question.py      the question parsed once: words, weights, numbers, kind
    candidates.py    dense neighbours + BM25 passages + best articles' passages → shortlist
    windows.py       a long sentence's 12-word windows: its cosine raised towards the best
    features.py      one row of measurements per shortlisted passage
    ranker.py        the learned ranker orders them
    answerability.py the learned probability that a hit answers; "not found" below its line
    highlight.py     the learned probability that a hit's sentence is the answering one

The ranker, the answerability and the highlight models are passed in, so training and
evaluation run the same code with other models (training only measures).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from index.answerability import Answerability
from index.backend import PassageStore
from index.candidates import gather
from index.embeddings import Embedder
from index.features import FEATURES, FeatureRows, compute
from index.highlight import Highlighter
from index.lexicon import Lexicon
from index.question import Question, parse_question
from index.ranker import Ranker


@dataclass(frozen=True)
class Hit:
    """A ranked passage: its ranker score, the probability it answers, and what was measured."""

    passage: int
    score: float  # the ranker's: only the order it gives means anything
    probability: float  # that this passage answers the question (answerability model)
    signals: dict[str, float]
    sentence_scores: tuple[float, ...]  # per sentence: the probability it is the answering one


class Searcher:
    """Ranks the passages of a loaded index for a question; safe to share between threads."""

    def __init__(
        self,
        stored: PassageStore,
        embedder: Embedder,
        ranker: Ranker | None = None,
        answerability: Answerability | None = None,
        highlighter: Highlighter | None = None,
    ) -> None:
        self.stored = stored
        self.embedder = embedder
        self.ranker = ranker
        self.answerability = answerability
        self.highlighter = highlighter
        self.lexicon = Lexicon(stored)

    def measure(
        self, question: str, vector: np.ndarray | None = None
    ) -> tuple[Question, FeatureRows]:
        """The question parsed, and the feature rows of its shortlisted candidates.

        ``vector`` is the question's embedding when the caller has it already
        (training embeds its questions in batches).
        """
        parsed = parse_question(question, self.lexicon)
        if vector is None:
            vector = self.embedder.encode_query(question)
        candidates = gather(self.stored, vector, list(parsed.tokens))
        return parsed, compute(parsed, candidates, self.lexicon)

    def search(self, question: str, limit: int = 20) -> list[Hit]:
        """The best ``limit`` passages for ``question``, best first."""
        if self.ranker is None or self.answerability is None or self.highlighter is None:
            raise ValueError("a Searcher needs its ranker, answerability and highlight models")
        if not len(self.stored.passages):
            return []
        _, rows = self.measure(question)
        if not len(rows.ids):
            return []
        scores = self.ranker.score(rows.matrix)
        order = np.argsort(-scores, kind="stable")[:limit]
        probability = self.answerability.probability(rows.matrix[order])
        # every hit's sentences in one call, then split per hit
        signals = [rows.sentence_signals[j] for j in order.tolist()]
        bounds = itertools.pairwise(np.cumsum([0] + [len(s) for s in signals]).tolist())
        likely = self.highlighter.probability(np.vstack(signals)).tolist()
        return [
            Hit(
                passage=int(rows.ids[j]),
                score=float(scores[j]),
                probability=float(p),
                signals=dict(zip(FEATURES, rows.matrix[j].tolist(), strict=True)),
                sentence_scores=tuple(likely[a:b]),
            )
            for j, p, (a, b) in zip(order.tolist(), probability.tolist(), bounds, strict=True)
        ]

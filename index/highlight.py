"""Which sentence of a quoted passage to highlight: a learned probability per sentence.

A quote is a whole passage; the reader's eye goes to the highlighted sentence,
so that sentence must be the one holding the answer. Each sentence is measured
(:data:`SENTENCE_SIGNALS`: its cosine with the question, a number beside a word
the question counts, its share of the question's words, whether it holds the
kind of thing asked for) and a logistic regression, trained by ``python -m
index train`` on the sentences of passages that answer a question (the one
holding the answer against its neighbours), turns them into the probability
that it is the answering sentence.

Hand-set weights did this before (the cosine plus fixed shares of the other
two, without the answer's kind): on held-out folds they put the answering
sentence first less often (see the README's quality section).

The model is a JSON file (``models/highlight.json``): signals, their means and
scales, coefficients, intercept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import logistic
from index.ranker import MODELS, ModelFileError

HIGHLIGHT_FILE = MODELS / "highlight.json"

# What is measured of each sentence of a candidate passage, in this column order.
SENTENCE_SIGNALS: tuple[str, ...] = ("cosine", "quantity", "coverage", "answer_type")


@dataclass(frozen=True)
class Highlighter:
    """A logistic model of "this sentence holds the answer"."""

    signals: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        sizes = {len(self.mean), len(self.scale), len(self.coef)}
        if self.signals != SENTENCE_SIGNALS or sizes != {len(SENTENCE_SIGNALS)}:
            raise ModelFileError(
                f"the highlight model reads {list(self.signals)}, this code measures "
                f"{list(SENTENCE_SIGNALS)}; train it again with: python -m index train"
            )

    def probability(self, signals: np.ndarray) -> np.ndarray:
        """For each row of sentence signals, the probability that it is the answering one."""
        return logistic.probability(signals, self.mean, self.scale, self.coef, self.intercept)

    @classmethod
    def load(cls, path: Path = HIGHLIGHT_FILE) -> Highlighter:
        return logistic.load_model(path, "highlight", cls)

    def save(self, path: Path) -> None:
        logistic.save_model(self, path)

"""Whether the best quote answers at all: a calibrated probability, and the line for "not found".

A logistic regression over a few features of a hit (its best sentence's
cosine, the share of the question's words it and its article hold, the words
of the question no passage has…), trained by ``python -m index train`` on
questions the corpus answers against questions it does not: real search
questions about other things, SQuAD 2.0's unanswerable questions written to
look answerable, and questions about articles left out of the index. Its
output is a probability, so one threshold means the same on any corpus; the
threshold is set on the training questions so that at most 1% of answerable
ones are refused. A loose quote is worse than "not found"; the threshold is
where the two are traded.

The model is a JSON file (``models/answerability.json``): features, their
means and scales, coefficients, intercept, threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import logistic
from index.features import COLUMN
from index.ranker import MODELS, ModelFileError

ANSWERABILITY_FILE = MODELS / "answerability.json"


@dataclass(frozen=True)
class Answerability:
    """A logistic model of "this hit answers the question", with its "not found" line."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in COLUMN]
        sizes = {len(self.features), len(self.mean), len(self.scale), len(self.coef)}
        if unknown or len(sizes) != 1:
            raise ModelFileError(
                f"the answerability model does not fit this code (features {unknown or 'ok'}); "
                "train it again with: python -m index train"
            )

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """For each feature row, the probability that its passage answers the question."""
        x = matrix[:, [COLUMN[f] for f in self.features]] if len(matrix) else matrix
        return logistic.probability(x, self.mean, self.scale, self.coef, self.intercept)

    def with_threshold(self, threshold: float) -> Answerability:
        return Answerability(
            self.features, self.mean, self.scale, self.coef, self.intercept, threshold
        )

    @classmethod
    def load(cls, path: Path = ANSWERABILITY_FILE) -> Answerability:
        return logistic.load_model(path, "answerability", cls)

    def save(self, path: Path) -> None:
        logistic.save_model(self, path)

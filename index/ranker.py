"""The learned ranker: a score for each candidate passage from its feature row.

A LightGBM LambdaRank model, trained by ``python -m index train`` on questions
with known answers (see :mod:`index.training`), in place of hand-set weights:
it learns how much a sentence's cosine is worth against a rare name it holds,
and when an article's other paragraphs should count. The model file
(``models/ranker.txt``) names the features it was trained on; loading checks
they are the ones :mod:`index.features` computes, so a model and the code that
feeds it never drift apart silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.features import FEATURES

MODELS = Path(__file__).resolve().parent / "models"
RANKER_FILE = MODELS / "ranker.txt"


class ModelFileError(RuntimeError):
    """A shipped or given model file is missing or does not fit this code."""


class Ranker:
    """Scores candidate passages; higher is better. Only the order of scores means anything."""

    def __init__(self, booster: object) -> None:
        names = tuple(booster.feature_name())  # type: ignore[attr-defined]
        if names != FEATURES:
            raise ModelFileError(
                "the ranking model was trained on other features than this code computes; "
                "train it again with: python -m index train"
            )
        self._booster = booster

    @classmethod
    def load(cls, path: Path = RANKER_FILE) -> Ranker:
        import lightgbm

        if not path.is_file():
            raise ModelFileError(
                f"no ranking model at {path}; train one with: python -m index train"
            )
        try:
            booster = lightgbm.Booster(model_file=str(path))
        except Exception as err:  # LightGBM raises its own error type for any bad file
            raise ModelFileError(f"ranking model {path} is unreadable ({err})") from err
        return cls(booster)

    def score(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.zeros(0)
        return np.asarray(self._booster.predict(matrix, num_threads=1))  # type: ignore[attr-defined]

    def save(self, path: Path) -> None:
        self._booster.save_model(str(path))  # type: ignore[attr-defined]

"""Fitting the models, and cross-fitting so that nothing is judged on what it learned from.

The ranker is LightGBM's LambdaRank over the candidates of answerable
questions. The "not found" model is a logistic regression over the best hit
of every question, answerable or not; the best hit it sees for a training
question is the one a ranker *not* trained on that question's fold put first
(cross-fitting), and its threshold is set from probabilities it gave to
folds it was not fitted on, so both are what a new corpus will see. The
highlight model is a logistic regression over the sentences of passages that
answer (the sentence holding the answer against the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from index.answerability import Answerability
from index.features import COLUMN, DIRECTION, FEATURES
from index.highlight import SENTENCE_SIGNALS, Highlighter
from index.ranker import Ranker
from index.training.collect import Measured
from index.training.datasets import ANSWERABLE

SEED = 20261129
RANKER_PARAMS: dict[str, object] = {
    "objective": "lambdarank",
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "random_state": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
    "monotone_constraints": [DIRECTION[name] for name in FEATURES],
}
# What the "not found" model reads of a hit: how close its best sentence is (alone, with
# its neighbour), how much of the question it holds with its article's title and lead
# (where news says what it is about), what of the question its article lacks or no
# passage has, and how far it stands above the other candidates.
ANSWERABILITY_FEATURES: tuple[str, ...] = (
    "sentence",
    "sentence_window",
    "coverage_lead",
    "sentence_joint_lead",
    "coverage_article",
    "missing_peak_article",
    "unknown",
    "sentence_spread",
)
REFUSED_ANSWERABLE = 0.01  # at most this share of each corpus's answerable questions refused
MIN_ANSWERABLE_PER_CORPUS = 10  # fewer say too little about a corpus to set the line
LOGISTIC_C = 1.0


@dataclass(frozen=True)
class Fitted:
    ranker: Ranker
    answerability: Answerability
    highlighter: Highlighter


def fit_ranker(measured: list[Measured]) -> Ranker:
    """LambdaRank on the answerable questions that have a relevant candidate."""
    import lightgbm

    usable = [m for m in measured if m.item.kind == ANSWERABLE and m.relevant.any()]
    x = np.vstack([m.matrix for m in usable])
    y = np.concatenate([m.relevant for m in usable])
    model = lightgbm.LGBMRanker(**RANKER_PARAMS)
    model.fit(
        x,
        y,
        group=[len(m.relevant) for m in usable],
        feature_name=list(FEATURES),
    )
    return Ranker(model.booster_)


def top_rows(measured: list[Measured], ranker: Ranker) -> tuple[np.ndarray, np.ndarray]:
    """Each question's best-ranked row, and whether it answers (1) or not (0)."""
    rows, labels = [], []
    for m in measured:
        if not len(m.matrix):
            rows.append(np.zeros(len(FEATURES), dtype=np.float32))
            labels.append(0)
            continue
        best = int(np.argmax(ranker.score(m.matrix)))
        rows.append(m.matrix[best])
        labels.append(int(m.item.kind == ANSWERABLE and bool(m.relevant[best])))
    return np.vstack(rows), np.array(labels)


def fit_answerability(rows: np.ndarray, labels: np.ndarray, threshold: float) -> Answerability:
    cols = [COLUMN[f] for f in ANSWERABILITY_FEATURES]
    fitted = _fit_logistic(rows[:, cols].astype(np.float64), labels)
    return Answerability(features=ANSWERABILITY_FEATURES, **fitted, threshold=threshold)


def fit_highlighter(measured: list[Measured]) -> Highlighter:
    """Logistic regression: the answering sentence of a passage against its others."""
    x = np.vstack([np.zeros((0, len(SENTENCE_SIGNALS)))] + [m.sentence_signals for m in measured])
    y = np.concatenate([np.zeros(0, dtype=np.int8)] + [m.sentence_labels for m in measured])
    return Highlighter(signals=SENTENCE_SIGNALS, **_fit_logistic(x, y))


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """A logistic regression on standardised ``x``: the fields both JSON models keep."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=LOGISTIC_C, max_iter=5000)
    model.fit((x - mean) / scale, y)
    return {
        "mean": tuple(float(v) for v in mean),
        "scale": tuple(float(v) for v in scale),
        "coef": tuple(float(v) for v in model.coef_[0]),
        "intercept": float(model.intercept_[0]),
    }


def cross_fit(measured: list[Measured]) -> Fitted:
    """Both models from ``measured``, with the threshold set on out-of-fold probabilities."""
    folds = sorted({m.item.fold for m in measured})
    rows = np.zeros((len(measured), len(FEATURES)), dtype=np.float32)
    labels = np.zeros(len(measured), dtype=np.int64)
    fold_of = np.array([m.item.fold for m in measured])
    for fold in folds:
        ranker = fit_ranker([m for m in measured if m.item.fold != fold])
        mine = np.flatnonzero(fold_of == fold)
        r, y = top_rows([measured[i] for i in mine], ranker)
        rows[mine], labels[mine] = r, y
    out_of_fold = np.zeros(len(measured))
    for fold in folds:
        inside = fold_of != fold
        model = fit_answerability(rows[inside], labels[inside], 0.5)
        out_of_fold[~inside] = model.probability(rows[~inside])
    threshold = refusal_line(measured, out_of_fold)
    return Fitted(
        fit_ranker(measured),
        fit_answerability(rows, labels, threshold),
        fit_highlighter(measured),
    )


def refusal_line(measured: list[Measured], probability: np.ndarray) -> float:
    """The highest line that refuses at most 1% of the answerable questions of *each* corpus.

    Each kind of text gets its own say: Wikipedia questions, written while
    reading one paragraph, sit closer to their answers than readers' questions
    about news, and a line set on the first alone would turn the second away.
    """
    lines = []
    for corpus in sorted({m.item.corpus for m in measured}):
        mine = np.array([m.item.kind == ANSWERABLE and m.item.corpus == corpus for m in measured])
        if mine.sum() >= MIN_ANSWERABLE_PER_CORPUS:
            lines.append(float(np.quantile(probability[mine], REFUSED_ANSWERABLE)))
    return min(lines) if lines else 0.5

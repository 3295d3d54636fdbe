"""Each question's feature rows, through the same code that answers, and where its answer is.

A candidate is *relevant* when its passage holds one of the question's
answers, case-insensitively, as whole words: "two" in "two expeditions", not in
"network". (The evaluation's own test is looser, any substring; to learn from,
the stricter one keeps passages that hold an answer by accident out.)

For the highlight model, the first relevant candidate (in the shortlist's
order) of each answerable question gives its sentences' signals, each
labelled by whether it holds the answer, when the answer lies within one
sentence and the passage has more than one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embeddings import Embedder
from index.features import FeatureRows
from index.highlight import SENTENCE_SIGNALS
from index.search import Searcher
from index.store import StoredIndex, load_index
from index.training.datasets import Item


@dataclass(frozen=True)
class Measured:
    """One question's shortlist: feature rows, relevance of each row, passage numbers."""

    item: Item
    matrix: np.ndarray
    relevant: np.ndarray  # 1 where the passage holds an answer
    ids: np.ndarray
    # the first relevant passage's sentences: their signals, and 1 where one holds the answer
    sentence_signals: np.ndarray
    sentence_labels: np.ndarray


def measure_all(
    items: list[Item],
    indexes: dict[str, Path],
    embedder: Embedder,
    say: Callable[[str], None],
) -> list[Measured]:
    """Feature rows for every item, corpus by corpus, with progress every few seconds."""
    out: list[Measured] = []
    for corpus in dict.fromkeys(i.corpus for i in items):
        mine = [i for i in items if i.corpus == corpus]
        stored = load_index(indexes[corpus])
        searcher = Searcher(stored, embedder)
        texts = [p.text.lower() for p in stored.passages]
        questions = list(dict.fromkeys(i.question for i in mine))
        vectors = dict(zip(questions, embedder.encode(questions, 64), strict=True))
        said = time.monotonic()
        for n, item in enumerate(mine, start=1):
            _, rows = searcher.measure(item.question, vectors[item.question])
            patterns = [_whole_words(a) for a in item.answers]
            relevant = np.array(
                [any(p.search(texts[i]) for p in patterns) for i in rows.ids.tolist()],
                dtype=np.int8,
            )
            signals, labels = _answering_sentences(stored, rows, relevant, patterns)
            out.append(
                Measured(item, rows.matrix.astype(np.float32), relevant, rows.ids, signals, labels)
            )
            if time.monotonic() - said > 5:
                say(f"  {corpus}: {n}/{len(mine)} questions measured")
                said = time.monotonic()
    return out


def _answering_sentences(
    stored: StoredIndex,
    rows: FeatureRows,
    relevant: np.ndarray,
    patterns: list[re.Pattern[str]],
) -> tuple[np.ndarray, np.ndarray]:
    """The first relevant passage's sentence signals and which of them hold the answer
    (empty when no sentence alone holds it, or the passage is one sentence)."""
    empty = np.zeros((0, len(SENTENCE_SIGNALS))), np.zeros(0, dtype=np.int8)
    first = np.flatnonzero(relevant)
    if not len(first):
        return empty
    r = int(first[0])
    sentences = stored.passages[int(rows.ids[r])].sentence_texts()
    signals = rows.sentence_signals[r]
    if len(sentences) < 2 or len(sentences) != len(signals):
        return empty
    labels = np.array(
        [any(p.search(s.lower()) for p in patterns) for s in sentences], dtype=np.int8
    )
    return (signals, labels) if labels.any() else empty


def _whole_words(answer: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(answer.lower().strip()) + r"(?!\w)")

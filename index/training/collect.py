"""Each question's feature rows, through the same code that answers, and where its answer is.

A candidate is *relevant* when its passage holds one of the question's
answers, case-insensitively, as whole words: "two" in "two expeditions", not in
"network". (The evaluation's own test is looser, any substring; to learn from,
the stricter one keeps passages that hold an answer by accident out.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embeddings import Embedder
from index.search import Searcher
from index.store import load_index
from index.training.datasets import Item


@dataclass(frozen=True)
class Measured:
    """One question's shortlist: feature rows, relevance of each row, passage numbers."""

    item: Item
    matrix: np.ndarray
    relevant: np.ndarray  # 1 where the passage holds an answer
    ids: np.ndarray


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
            out.append(Measured(item, rows.matrix.astype(np.float32), relevant, rows.ids))
            if time.monotonic() - said > 5:
                say(f"  {corpus}: {n}/{len(mine)} questions measured")
                said = time.monotonic()
    return out


def _whole_words(answer: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(answer.lower().strip()) + r"(?!\w)")

"""A question, parsed once: its content words and their weights, its numbers, what it asks for.

Every later step (candidates, features, the "not found" decision) reads this
instead of tokenizing the question again. Nothing here depends on how the
question is written (case, a question mark, extra spaces): "HOW MANY VOTES DID
THE 63RD RESOLUTION GET" and "how many votes did the 63rd resolution get?"
parse the same.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.lexical import tokenize

# What kind of answer a question wants, from its question words. These are the
# closed class of English interrogatives, not words picked from any question set.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "quantity",
        re.compile(
            r"\bhow\s+(many|much|often|long|far|old|large|big|high|tall|fast)\b"
            r"|\b(what|which)\s+(number|percentage|percent|share|amount|proportion|size|rate)\b",
        ),
    ),
    (
        "time",
        re.compile(
            r"\bwhen\b|\b(what|which)\s+(year|years|date|day|month|century|decade|time|period|era)\b"
            r"|\bhow\s+long\s+ago\b|\bsince\s+when\b",
        ),
    ),
    ("person", re.compile(r"\bwho\b|\bwhom\b|\bwhose\b")),
    ("place", re.compile(r"\bwhere\b|\b(what|which)\s+(country|city|place|town|region|state)\b")),
)
KINDS = ("quantity", "time", "person", "place", "other")


@dataclass(frozen=True)
class Question:
    """What the ranking needs to know about a question, computed once per question.

    ``tokens`` are the question's distinct content words (stemmed, as the lexical
    index has them), ``weights`` their inverse document frequencies in this
    corpus, so a rare name counts for more than a common word. ``bigrams`` are
    pairs of content words next to each other in the question ("security
    council"), ``numbers`` the tokens that are numbers ("63rd" is ``63rd``,
    "1,500" is ``1500``), ``kind`` what sort of answer it wants.
    """

    text: str
    tokens: tuple[str, ...]
    weights: np.ndarray  # 0 for a word no passage of the corpus holds
    bigrams: frozenset[tuple[str, str]]
    numbers: frozenset[str]
    kind: str
    unknown_share: float  # share of the weight on words no passage of the corpus has

    @property
    def total_weight(self) -> float:
        return float(self.weights.sum())


def question_kind(text: str) -> str:
    """``quantity``, ``time``, ``person``, ``place`` or ``other``, from the question words."""
    lowered = " ".join(text.lower().split())
    for kind, pattern in _KINDS:
        if pattern.search(lowered):
            return kind
    return "other"


def parse_question(text: str, idf: IdfLookup) -> Question:
    """Parse ``text`` against a corpus's word statistics (``idf`` gives weight and presence)."""
    sequence = tokenize(text)
    tokens = tuple(dict.fromkeys(sequence))
    rarity = np.array([idf.idf(t) for t in tokens], dtype=np.float64)
    known = np.array([idf.known(t) for t in tokens], dtype=bool)
    # A word no passage holds cannot tell passages apart: it weighs nothing in what
    # a passage covers ("receive" where the articles say "adopted with"), and is
    # counted once, in ``unknown_share``, for the "not found" decision.
    weights = np.where(known, rarity, 0.0) if len(tokens) else rarity
    unknown = float(rarity[~known].sum()) if len(tokens) else 0.0
    total = float(rarity.sum())
    return Question(
        text=text,
        tokens=tokens,
        weights=weights,
        bigrams=frozenset(itertools.pairwise(sequence)),
        numbers=frozenset(t for t in tokens if t[:1].isdigit()),
        kind=question_kind(text),
        unknown_share=unknown / total if total else 0.0,
    )


class IdfLookup(Protocol):
    """The part of a corpus's statistics a question needs; see :class:`index.lexicon.Lexicon`."""

    def idf(self, token: str) -> float: ...

    def known(self, token: str) -> bool: ...

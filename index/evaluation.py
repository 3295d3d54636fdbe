"""Measuring answer quality on a question file (``q``, ``answers``, ``expect``).

A hit is a quote whose text or source line contains one of the expected
strings, case-insensitively. Hit@1, Hit@3 and MRR rank the quotes over the
answerable questions, whatever the "not found" decision; that decision is
counted separately, both ways: unanswerable questions that got "not found",
and answerable ones that wrongly did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.answers import Answer
from index.engine import QuoteIndex

EVAL_DEPTH = 10  # quotes asked for per question when measuring ranks


@dataclass
class EvalResult:
    answerable: int = 0
    unanswerable: int = 0
    hit_at_1: float = 0.0
    hit_at_3: float = 0.0
    mrr: float = 0.0
    abstained_correctly: int = 0
    wrongly_not_found: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "hit@1": round(self.hit_at_1, 4),
            "hit@3": round(self.hit_at_3, 4),
            "mrr": round(self.mrr, 4),
            "unanswerable_not_found": self.abstained_correctly,
            "answerable_not_found": self.wrongly_not_found,
            "misses": self.misses,
        }


def read_questions(path: Path) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from err
        if not isinstance(item, dict) or not isinstance(item.get("q"), str):
            raise ValueError(f"{path}:{number}: needs a string field 'q'")
        items.append(item)
    return items


def rank_of_hit(answer: Answer, expected: Sequence[str]) -> int | None:
    """1-based rank of the first quote whose text or source line holds an expected string."""
    return first_rank(
        [" ".join([quote.text, *(s.line() for s in quote.sources)]) for quote in answer.quotes],
        expected,
    )


def first_rank(texts: Sequence[str], expected: Sequence[str]) -> int | None:
    """1-based rank of the first of ``texts`` holding an expected string (any case), or None."""
    wanted = [e.lower() for e in expected]
    for rank, text in enumerate(texts, start=1):
        lowered = text.lower()
        if any(w in lowered for w in wanted):
            return rank
    return None


def evaluate(index: QuoteIndex, questions: list[dict[str, Any]]) -> EvalResult:
    result = EvalResult()
    hits1 = hits3 = reciprocal = 0.0
    for item in questions:
        answer, probability = index.ranked(item["q"], k=EVAL_DEPTH)
        found = probability >= index.min_confidence
        if item.get("expect") == "abstain":
            result.unanswerable += 1
            if not found:
                result.abstained_correctly += 1
            else:
                result.misses.append(
                    {
                        "q": item["q"],
                        "why": "answered an unanswerable question",
                        "got": answer.quotes[0].text[:160],
                    }
                )
            continue
        result.answerable += 1
        if not found:
            result.wrongly_not_found += 1
        rank = rank_of_hit(answer, list(item.get("answers", [])))
        if rank == 1:
            hits1 += 1
        if rank is not None and rank <= 3:
            hits3 += 1
        if rank is not None:
            reciprocal += 1 / rank
        if rank != 1:
            result.misses.append(
                {
                    "q": item["q"],
                    "why": f"first hit at rank {rank}" + ("" if found else ", and not found"),
                    "got": answer.quotes[0].text[:160] if answer.quotes else None,
                }
            )
    if result.answerable:
        result.hit_at_1 = hits1 / result.answerable
        result.hit_at_3 = hits3 / result.answerable
        result.mrr = reciprocal / result.answerable
    return result

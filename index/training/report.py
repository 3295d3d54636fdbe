"""Held-out figures, quotebot beside the plain baselines, one table per question set.

Every quotebot figure comes from models that never saw a question about the
article asked about (see :mod:`index.training.datasets` for the folds). A hit
is a quote whose text holds one of the answers, case-insensitively, for
quotebot and the baselines alike. Hit@k and MRR rank the quotes whatever the
"not found" decision; "answerable refused" counts the answerable questions
that decision turned away; "highlight holds the answer" is, of the answerable
questions whose first quote holds an answer, the share whose highlighted
sentence(s) hold it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from index.embeddings import Embedder
from index.engine import QuoteIndex
from index.evaluation import EVAL_DEPTH, first_rank
from index.store import load_index
from index.training.baselines import BASELINES
from index.training.datasets import ANSWERABLE, LEFT_OUT, OFFTOPIC, UNANSWERABLE, Item
from index.training.fit import Fitted

TABLES: dict[str, tuple[str, ...]] = {
    "SQuAD dev16: 16 Wikipedia articles (726 passages)": ("squad", "squad-left-out", "nq-squad"),
    "Seed articles: ../shared/eval/dev_qa.jsonl": ("seeds-dev", "nq-seeds"),
    "Seed articles: eval/holdout_qa.jsonl (never trained or tuned on)": ("seeds-holdout",),
}


@dataclass
class Tally:
    answerable: int = 0
    hit1: int = 0
    hit3: int = 0
    reciprocal: float = 0.0
    refused: int = 0
    highlighted: int = 0  # first quote holds an answer, and so does its highlight
    probes: dict[str, list[int]] = field(default_factory=dict)  # kind -> [asked, not found]

    def answered(self, rank: int | None, found: bool, highlighted: bool = False) -> None:
        self.answerable += 1
        self.highlighted += rank == 1 and highlighted
        self.hit1 += rank == 1
        self.hit3 += rank is not None and rank <= 3
        self.reciprocal += 1.0 / rank if rank else 0.0
        self.refused += not found

    def probed(self, kind: str, found: bool) -> None:
        asked = self.probes.setdefault(kind, [0, 0])
        asked[0] += 1
        asked[1] += not found

    def cells(self, with_decision: bool) -> list[str]:
        n = self.answerable or 1
        cells = [f"{self.hit1 / n:.3f}", f"{self.hit3 / n:.3f}", f"{self.reciprocal / n:.3f}"]
        if not with_decision:
            return [*cells, "—", "—", "—", "—", "—"]
        for kind in (OFFTOPIC, LEFT_OUT, UNANSWERABLE):
            asked, refused = self.probes.get(kind, [0, 0])
            cells.append(f"{refused / asked:.3f} ({refused}/{asked})" if asked else "—")
        cells.append(f"{self.refused}/{self.answerable} ({self.refused / n:.1%})")
        cells.append(f"{self.highlighted / (self.hit1 or 1):.3f} ({self.highlighted}/{self.hit1})")
        return cells


def quotebot_tallies(
    items: list[Item],
    indexes: dict[str, Path],
    models: dict[int, Fitted],
    embedder: Embedder,
    say: Callable[[str], None],
) -> dict[str, Tally]:
    """Per source set, what quotebot did with each question, by its fold's models."""
    tallies: dict[str, Tally] = {}
    engines: dict[tuple[str, int], QuoteIndex] = {}
    said = time.monotonic()
    for n, item in enumerate(items, start=1):
        key = (item.corpus, item.fold)
        if key not in engines:
            fitted = models[item.fold]
            engines[key] = QuoteIndex(
                indexes[item.corpus],
                embedder=embedder,
                ranker=fitted.ranker,
                answerability=fitted.answerability,
                highlighter=fitted.highlighter,
            )
        engine = engines[key]
        answer, probability = engine.ranked(item.question, EVAL_DEPTH)
        found = probability >= engine.min_confidence
        tally = tallies.setdefault(item.source, Tally())
        if item.kind == ANSWERABLE:
            rank = first_rank([q.text for q in answer.quotes], item.answers)
            highlighted = bool(answer.quotes) and (
                first_rank([" ".join(answer.quotes[0].highlights)], item.answers) == 1
            )
            tally.answered(rank, found, highlighted)
        else:
            tally.probed(item.kind, found)
        if time.monotonic() - said > 5:
            say(f"  quotebot: {n}/{len(items)} questions")
            said = time.monotonic()
    return tallies


def baseline_tallies(
    items: list[Item], indexes: dict[str, Path], embedder: Embedder
) -> dict[tuple[str, str], Tally]:
    """Per (source set, baseline), the ranks of the answerable questions' answers."""
    out: dict[tuple[str, str], Tally] = {}
    answerable = [i for i in items if i.kind == ANSWERABLE]
    for corpus in dict.fromkeys(i.corpus for i in answerable):
        stored = load_index(indexes[corpus])
        texts = [p.text for p in stored.passages]
        mine = [i for i in answerable if i.corpus == corpus]
        questions = list(dict.fromkeys(i.question for i in mine))
        vectors = dict(zip(questions, embedder.encode(questions, 64), strict=True))
        for name, make in BASELINES.items():
            ranked = make(stored)
            for item in mine:
                order = ranked(item.question, vectors[item.question])[:EVAL_DEPTH]
                rank = first_rank([texts[i] for i in order], item.answers)
                out.setdefault((item.source, name), Tally()).answered(rank, True)
    return out


def render(
    quotebot: dict[str, Tally], baselines: dict[tuple[str, str], Tally], trained_on: str
) -> str:
    """The tables, in Markdown."""
    header = (
        "| method | Hit@1 | Hit@3 | MRR | off-topic → not found | left-out article → not found "
        "| SQuAD 2.0 unanswerable → not found | answerable refused "
        "| highlight holds the answer |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    parts = []
    for title, sources in TABLES.items():
        answer_set = sources[0]
        if answer_set not in quotebot:
            continue
        # the answerable questions' figures, and every set's probes added up
        merged = replace(quotebot[answer_set], probes={})
        for source in sources:
            for kind, (asked, refused) in quotebot.get(source, Tally()).probes.items():
                mine = merged.probes.setdefault(kind, [0, 0])
                mine[0] += asked
                mine[1] += refused
        rows = [f"| quotebot ({trained_on}) | " + " | ".join(merged.cells(True)) + " |"]
        for name in BASELINES:
            tally = baselines.get((answer_set, name))
            if tally:
                rows.append(f"| {name} | " + " | ".join(tally.cells(False)) + " |")
        parts.append(
            f"**{title}** ({merged.answerable} answerable questions)\n\n{header}\n"
            + "\n".join(rows)
        )
    return "\n\n".join(parts)

"""``python -m index train`` and ``python -m index quality``: the whole procedure, in order.

1. index each corpus (the seed articles, SQuAD dev16, SQuAD dev16 less each fold);
2. measure every question through the answering code: its candidates' feature rows;
3. for each fold, fit the models on the other folds, and answer that fold's
   questions with them (the held-out figures); fit the baselines' rankings too;
4. ``train`` only: fit the models on every fold and write them, with a record
   of the data, folds, seed, settings and held-out figures, into ``index/models``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from index.answerability import ANSWERABILITY_FILE
from index.embeddings import Embedder
from index.features import FEATURES
from index.highlight import HIGHLIGHT_FILE, SENTENCE_SIGNALS
from index.ranker import MODELS, RANKER_FILE
from index.training import fit
from index.training.collect import measure_all
from index.training.corpora import build_corpora
from index.training.datasets import (
    FOLDS,
    Sources,
    all_items,
    article_folds,
    holdout_items,
    squad_folds,
)
from index.training.report import baseline_tallies, quotebot_tallies, render

RECORD_FILE = MODELS / "training.json"


@dataclass(frozen=True)
class Outcome:
    report: str  # the held-out tables, Markdown
    threshold: float  # the shipped (or would-be) "not found" line
    seconds: float


def run(
    sources: Sources,
    work: Path,
    embedder: Embedder,
    say: Callable[[str], None],
    *,
    write_models: bool,
    models_dir: Path = MODELS,
) -> Outcome:
    started = time.monotonic()
    items = all_items(sources)
    holdout = holdout_items(sources)
    say(f"{len(items)} questions to learn from, {len(holdout)} held out for good")
    indexes = build_corpora(sources.corpora(), work, embedder, say)
    say("measuring every question through the answering code")
    measured = measure_all(items, indexes, embedder, say)
    models = {}
    for f in range(FOLDS):
        say(f"fold {f}: fitting on the other folds")
        models[f] = fit.cross_fit([m for m in measured if m.item.fold != f])
    say("answering each fold's questions with the models that never saw it")
    quotebot = quotebot_tallies(items + holdout, indexes, models, embedder, say)
    baselines = baseline_tallies(items + holdout, indexes, embedder)
    report = render(quotebot, baselines, "held-out folds")
    say("fitting on every fold")
    final = fit.cross_fit(measured)
    if write_models:
        models_dir.mkdir(parents=True, exist_ok=True)
        final.ranker.save(models_dir / RANKER_FILE.name)
        final.answerability.save(models_dir / ANSWERABILITY_FILE.name)
        final.highlighter.save(models_dir / HIGHLIGHT_FILE.name)
        record = _record(sources, items, holdout, embedder, final.answerability.threshold, report)
        (models_dir / RECORD_FILE.name).write_text(json.dumps(record, indent=1) + "\n")
    return Outcome(report, final.answerability.threshold, time.monotonic() - started)


def _record(sources, items, holdout, embedder, threshold, report) -> dict:
    def file_entry(path: Path, shown: str) -> dict:
        return {"path": shown, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    counts: dict[str, dict[str, int]] = {}
    for item in items + holdout:
        counts.setdefault(item.source, {}).setdefault(item.kind, 0)
        counts[item.source][item.kind] += 1
    eval_dir = sources.shared_eval
    return {
        "command": "python -m index train",
        "seed": fit.SEED,
        "data": [
            file_entry(eval_dir / name, f"../shared/eval/{name}")
            for name in ("squad-dev16/qa.jsonl", "nq-offtopic.jsonl", "dev_qa.jsonl")
        ]
        + [
            file_entry(sources.repo / "eval" / "holdout_qa.jsonl", "eval/holdout_qa.jsonl"),
        ],
        "corpora": {
            "squad": "../shared/eval/squad-dev16/corpus",
            "seeds": "corpus",
            "squad-without-F": "the SQuAD corpus less fold F's articles",
        },
        "questions": counts,
        "folds": {
            "squad articles": squad_folds(sources.squad_corpus),
            "seed articles": {k: v[0] for k, v in article_folds(sources.seed_corpus).items()},
            "Natural Questions, and questions no article answers": "line number % 4",
            "eval/holdout_qa.jsonl": "never trained on; measured with its article's fold's models",
        },
        "embedding": {"model": embedder.name, "backend": embedder.backend},
        "ranker": {"features": list(FEATURES), "params": fit.RANKER_PARAMS},
        "answerability": {
            "features": list(fit.ANSWERABILITY_FEATURES),
            "logistic C": fit.LOGISTIC_C,
            "refused answerable at most": fit.REFUSED_ANSWERABLE,
            "threshold": threshold,
        },
        "highlight": {
            "signals": list(SENTENCE_SIGNALS),
            "logistic C": fit.LOGISTIC_C,
            "trained on": "the sentences of each answerable question's first passage "
            "that holds its answer; label: the sentence holds it",
        },
        "versions": {
            "python": platform.python_version(),
            **{p: metadata.version(p) for p in ("lightgbm", "scikit-learn", "numpy", "faiss-cpu")},
        },
        "held-out report": report,
    }

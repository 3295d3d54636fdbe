"""Ablation: how each retrieval signal contributes, on one or more question files.

Re-ranks with subsets of the signals in ``index.search.WEIGHTS`` over the real
index and prints Hit@1 / Hit@3 / MRR for each variant, so the method's choices
in the README can be checked, not taken on trust::

    python scripts/ablation.py ../shared/eval/dev_qa.jsonl eval/holdout_qa.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS: dict[str, dict[str, float]] = {
    "dense (paragraph embedding only)": {"dense": 1.0},
    "BM25 only": {"bm25": 1.0},
    "dense + BM25": {"dense": 1.0, "bm25": 0.3},
    "dense + sentence + BM25": {"dense": 1.0, "sentence": 0.5, "bm25": 0.3},
    "+ article BM25": {"dense": 1.0, "sentence": 0.5, "bm25": 0.15, "article_bm25": 0.15},
    "+ article-aware coverage": {
        "dense": 1.0,
        "sentence": 0.5,
        "bm25": 0.15,
        "article_bm25": 0.15,
        "coverage": 0.3,
    },
    "+ quantity answer type (shipped)": {},  # filled with index.search.WEIGHTS
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--index", type=Path, default=None, help="index dir (default: settings)")
    args = parser.parse_args()

    import index.search as search
    from index import QuoteIndex
    from index.evaluation import evaluate, read_questions
    from index.settings import IndexSettings

    shipped = dict(search.WEIGHTS)
    VARIANTS["+ quantity answer type (shipped)"] = shipped
    engine = QuoteIndex(args.index or IndexSettings().index_dir)
    questions = {f: read_questions(f) for f in args.files}
    header = f"{'variant':<36}" + "".join(f"{f.name:>28}" for f in args.files)
    print(header)
    print(f"{'':<36}" + "".join(f"{'Hit@1  Hit@3   MRR':>28}" for _ in args.files))
    for name, weights in VARIANTS.items():
        search.WEIGHTS.clear()
        search.WEIGHTS.update({k: weights.get(k, 0.0) for k in shipped})
        cells = []
        for f in args.files:
            r = evaluate(engine, questions[f])
            cells.append(f"{r.hit_at_1:>16.3f}{r.hit_at_3:>6.3f}{r.mrr:>6.3f}")
        print(f"{name:<36}" + "".join(cells))
    search.WEIGHTS.clear()
    search.WEIGHTS.update(shipped)


if __name__ == "__main__":
    main()

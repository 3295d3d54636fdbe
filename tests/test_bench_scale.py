"""The scale benchmark's table of where an answer's time goes.

It times the real answering steps by wrapping the index's three searches for the
length of its pass; these check that every step is timed, that the wrappers are
gone afterwards (the same answers as before), and that the table adds up.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench_scale.py"
FLAGSHIP = "how many votes did the 63rd resolution get?"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while made
    spec.loader.exec_module(module)
    return module


def test_every_step_is_timed_and_the_searches_are_left_as_they_were(quote_index):
    bench = load_bench()
    before = quote_index.answer(FLAGSHIP)
    stages = bench.answer_stages(quote_index, [FLAGSHIP, "who welcomed the resolution?"])

    assert set(stages) == set(bench.STAGES)
    assert all(spent >= 0 for spent in stages.values()), stages
    for name in ("dense search", "passage BM25", "article BM25", "features", "trees"):
        assert stages[name] > 0, name
    stored = quote_index.searcher.stored
    for owner in (stored.faiss_index, stored.passage_bm25, stored.article_bm25):
        assert "search" not in vars(owner)  # the class's own method again
    assert quote_index.answer(FLAGSHIP) == before


def test_the_table_sets_the_unavoidable_steps_beside_the_embeddings_budget():
    bench = load_bench()
    stages = dict.fromkeys(bench.STAGES, 0.0001) | {"dense search": 0.0004, "features": 0.001}
    row = bench.Row(20_000, "not built", {"stages": stages, "bare_p50": 0.002})
    header, _, line = bench.stage_table([row])
    names = [cell.strip() for cell in header.strip("|").split("|")]
    cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|")), strict=True))

    assert cells["passages"] == "20,000"
    assert float(cells["of it, the steps no answer goes without"]) == pytest.approx(0.8)
    assert float(cells["together"]) == pytest.approx(1.0 + 0.4 + 5 * 0.1)
    assert float(cells["0.3 × the query embedding"]) == pytest.approx(0.6)

"""Benchmark: build throughput and query latency, each beside the bare model cost.

Prints figures, asserts nothing: the machine is noisy, so the ratios (our
pipeline vs. bare ``model.encode`` on the same texts) are what to compare
between runs. Usage::

    python scripts/benchmark.py [--copies 40] [--repeat 5]

The corpus is the seed corpus copied ``--copies`` times (each copy's text made
unique, so nothing is deduplicated away) into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="copies of the seed corpus")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the questions")
    parser.add_argument("--questions", type=Path, default=ROOT.parent / "shared/eval/dev_qa.jsonl")
    args = parser.parse_args()

    from index import QuoteIndex
    from index.build import build_index
    from index.embeddings import DEFAULT_MODEL, Embedder
    from index.store import load_index

    t0 = time.perf_counter()
    embedder = Embedder(DEFAULT_MODEL)
    print(f"model load                 {time.perf_counter() - t0:8.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for n in range(args.copies):
            for path in sorted((ROOT / "corpus").glob("*.md")):
                text = path.read_text(encoding="utf-8")
                head, sep, body = text.partition("\n---\n")
                body = "\n\n".join(f"[{n}] {p}" if p.strip() else p for p in body.split("\n\n"))
                (corpus / f"{n:03d}-{path.name}").write_text(head + sep + body, encoding="utf-8")

        t0 = time.perf_counter()
        report = build_index(corpus, Path(tmp) / "index", embedder=embedder, progress=False)
        build_s = time.perf_counter() - t0
        stored = load_index(Path(tmp) / "index")
        texts = [p.text for p in stored.passages]
        texts += [p.text[a:b] for p in stored.passages for a, b in p.sentences]
        unique = list(dict.fromkeys(texts))
        t0 = time.perf_counter()
        embedder.encode(unique, batch_size=64)
        encode_s = time.perf_counter() - t0
        print(
            f"corpus                     {report.articles} articles, {report.passages} passages, "
            f"{report.sentences} sentences ({len(unique)} texts embedded)"
        )
        print(
            f"build                      {build_s:8.2f} s  "
            f"{report.passages / build_s:8.1f} passages/s"
        )
        print(
            f"bare model.encode          {encode_s:8.2f} s  {report.passages / encode_s:8.1f} "
            f"passages/s (same {len(unique)} texts)"
        )
        print(f"build / bare encode        {build_s / encode_s:8.2f} x")

        t0 = time.perf_counter()
        rebuild = build_index(corpus, Path(tmp) / "index", embedder=embedder, progress=False)
        print(
            f"rebuild, nothing changed   {time.perf_counter() - t0:8.2f} s  "
            f"({rebuild.reused_articles} articles reused)"
        )

        index = QuoteIndex(Path(tmp) / "index", embedder=embedder)
        questions = [
            json.loads(line)["q"]
            for line in args.questions.read_text().splitlines()
            if line.strip()
        ]
        latencies, bare = [], []
        for _ in range(args.repeat):
            for question in questions:
                t0 = time.perf_counter()
                embedder.encode([question])
                bare.append(time.perf_counter() - t0)
            from index.embeddings import _cached_query

            _cached_query.cache_clear()  # measure the full path, query embedding included
            for question in questions:
                t0 = time.perf_counter()
                index.answer(question)
                latencies.append(time.perf_counter() - t0)
        p50, p95 = _percentile(latencies, 50), _percentile(latencies, 95)
        b50, b95 = _percentile(bare, 50), _percentile(bare, 95)
        print(
            f"query latency              p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms "
            f"({len(latencies)} queries over {report.passages} passages)"
        )
        print(f"bare query embedding       p50 {b50 * 1000:7.1f} ms   p95 {b95 * 1000:7.1f} ms")
        print(f"query / bare embedding     p50 {p50 / b50:7.2f} x   p95 {p95 / b95:7.2f} x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS)          {peak:8.0f} MiB")


def _percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else 0.0


if __name__ == "__main__":
    main()

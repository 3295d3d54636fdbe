"""Benchmark: embedding throughput, agreement and query latency of each backend beside torch.

Prints figures, asserts nothing. The texts are real: the passages and sentences of
``../shared/eval/squad-dev16/corpus`` and ``corpus/`` (split as the build splits them),
embedded as the build embeds them (longest first, in batches of 64). The machine is
shared and noisy, so everything runs in one process, interleaved: each round embeds the
same texts with every backend in turn (the order rotating), and the figure to read is
the median over rounds of each round's ratio to torch. Usage::

    python scripts/bench_embedding.py [--rounds 5] [--subset 800] [--queries 200]

Round 1 embeds every text (and gives the cosine agreement with torch over all of them);
later rounds embed a length-stratified subset of ``--subset`` texts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "eval"
BATCH = 64  # what index/build.py uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,openvino,openvino-int8")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds (1 = all texts)")
    parser.add_argument("--subset", type=int, default=800, help="texts in rounds after the first")
    parser.add_argument("--queries", type=int, default=200, help="questions timed one by one")
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        help="corpus folder (repeatable); default: squad-dev16 and the seed corpus",
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if backends[0] != "torch":
        backends = ["torch", *[b for b in backends if b != "torch"]]

    from index.embeddings import DEFAULT_MODEL, Embedder

    embedders: dict[str, Embedder] = {}
    for backend in backends:
        t0 = time.perf_counter()
        embedders[backend] = Embedder(DEFAULT_MODEL, backend)
        print(f"load {backend:<14} {time.perf_counter() - t0:6.1f} s", flush=True)

    texts = _texts(
        embedders["torch"], args.corpus or [SHARED / "squad-dev16/corpus", ROOT / "corpus"]
    )
    texts.sort(key=len, reverse=True)
    step = max(1, len(texts) // max(1, args.subset))
    subset = texts[::step][: args.subset]
    print(
        f"texts: {len(texts)} distinct passages and sentences, "
        f"median {statistics.median(len(t) for t in texts):.0f} chars; "
        f"later rounds: {len(subset)} of them (every {step}th by length)",
        flush=True,
    )

    reference: np.ndarray | None = None
    agreement: dict[str, np.ndarray] = {}
    speed: dict[str, list[float]] = {b: [] for b in backends}
    ratios: dict[str, list[float]] = {b: [] for b in backends}
    for round_no in range(args.rounds):
        batch_texts = texts if round_no == 0 else subset
        order = backends[round_no % len(backends) :] + backends[: round_no % len(backends)]
        this_round: dict[str, float] = {}
        for backend in order:
            t0 = time.perf_counter()
            vectors = _embed(embedders[backend], batch_texts)
            this_round[backend] = len(batch_texts) / (time.perf_counter() - t0)
            if round_no == 0:
                if backend == "torch":
                    reference = vectors
                agreement[backend] = vectors
        if round_no == 0:
            assert reference is not None
            agreement = {b: np.sum(v * reference, axis=1) for b, v in agreement.items()}
        for backend in backends:
            speed[backend].append(this_round[backend])
            ratios[backend].append(this_round[backend] / this_round["torch"])
        print(
            f"round {round_no + 1}/{args.rounds} ({len(batch_texts)} texts): "
            + ", ".join(f"{b} {this_round[b]:.1f}/s" for b in backends),
            flush=True,
        )

    questions = _questions(args.queries)
    latency: dict[str, list[float]] = {b: [] for b in backends}
    for q in questions[:3]:  # warm-up
        for backend in backends:
            embedders[backend].encode([q])
    for q in questions:
        for backend in backends:
            t0 = time.perf_counter()
            embedders[backend].encode([q])
            latency[backend].append((time.perf_counter() - t0) * 1000)

    print()
    print(
        f"| backend | texts/s (median of {args.rounds}) | × torch (median of per-round ratios) "
        "| cosine to torch: min / mean | texts < 0.99 "
        f"| query p50 / p95 ({len(questions)} questions) |"
    )
    print("|---|---|---|---|---|---|")
    for backend in backends:
        cos = agreement[backend]
        print(
            f"| {backend} | {statistics.median(speed[backend]):.1f} "
            f"| {statistics.median(ratios[backend]):.2f}× "
            f"(range {min(ratios[backend]):.2f}-{max(ratios[backend]):.2f}) "
            f"| {cos.min():.4f} / {cos.mean():.4f} | {int((cos < 0.99).sum())} of {len(cos)} "
            f"| {_pct(latency[backend], 50):.1f} / {_pct(latency[backend], 95):.1f} ms |"
        )


def _texts(embedder, folders: list[Path]) -> list[str]:
    from index.corpus import read_corpus
    from index.passages import split_article

    texts: list[str] = []
    for folder in folders:
        for article in read_corpus(folder).articles:
            for passage in split_article(article.body, 0, embedder.count_tokens, embedder.window):
                texts.append(passage.text)
                texts.extend(passage.sentence_texts())
    return list(dict.fromkeys(texts))


def _embed(embedder, texts: list[str]) -> np.ndarray:
    """As the build does: texts already longest first, batches of 64."""
    parts = [
        embedder.encode(texts[i : i + BATCH], batch_size=BATCH) for i in range(0, len(texts), BATCH)
    ]
    return np.vstack(parts)


def _questions(limit: int) -> list[str]:
    out: list[str] = []
    with (SHARED / "squad-dev16/qa.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            out.append(json.loads(line)["q"])
            if len(out) >= limit:
                break
    return out


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()

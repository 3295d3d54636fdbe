"""Recall@10 and latency of HNSW and IVF against exact search over an index's passage vectors.

How ``index/dense.py``'s approximate backend and its settings were chosen: for an
index already built (any model), this builds HNSW graphs and IVF indexes over its
passage vectors and prints, per search setting, recall@10 against exact
inner-product search and the time per query (one thread), over questions
embedded with the index's model (a JSONL file's ``q``, or 8 consecutive words of
random passages, as the scale benchmark asks).

Usage::

    python scripts/ann_recall.py --index /tmp/idx [--questions qa.jsonl] [--hnsw-m 16,32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path, help="JSONL with a 'q' per line")
    parser.add_argument("--count", type=int, default=300, help="questions (default 300)")
    parser.add_argument("--hnsw-m", default="16,32", help="HNSW M values")
    parser.add_argument("--ef", default="32,64,128,256", help="HNSW efSearch values")
    parser.add_argument("--lists", default="", help="IVF nlist values (default 4·√n)")
    parser.add_argument("--probes", default="8,16,32,64,128", help="IVF nprobe values")
    parser.add_argument("--backend", default=None, help="embedding backend")
    args = parser.parse_args()

    import faiss
    import numpy as np

    from index import dense
    from index.embeddings import Embedder
    from index.store import load_index

    stored = load_index(args.index)
    vectors = np.ascontiguousarray(stored.passage_vectors[:], dtype=np.float32)
    n, dimension = vectors.shape
    rng = random.Random(0)
    if args.questions:
        lines = [json.loads(x) for x in args.questions.read_text().splitlines() if x.strip()]
        questions = [x["q"] for x in lines if "q" in x]
        questions = rng.sample(questions, min(args.count, len(questions)))
    else:
        questions = []
        while len(questions) < args.count:
            passage = stored.passages[rng.randrange(len(stored.passages))]
            words = passage.text.split()
            if len(words) >= 8:
                start = rng.randrange(len(words) - 7)
                questions.append(" ".join(words[start : start + 8]))
    embedder = Embedder(stored.manifest.model, args.backend)
    queries = np.vstack([embedder.encode_query(q) for q in questions]).astype(np.float32)
    k = 10
    kth = np.sort(queries @ vectors.T, axis=1)[:, -k]
    cores = os.cpu_count() or 1
    print(f"{n:,} passages, {len(queries)} questions, model {stored.manifest.model}")
    print("| index | setting | lists read | recall@10 | ms / query |")
    print("|---|---|---|---|---|")

    def measure(index: Any, label: str, setting: str, share: str) -> None:
        faiss.omp_set_num_threads(1)
        started = time.perf_counter()
        found = np.vstack([index.search(q.reshape(1, -1), k)[1] for q in queries])
        per = (time.perf_counter() - started) / len(queries) * 1000
        hits = sum(
            int(np.count_nonzero(vectors[ids[ids >= 0]] @ queries[row] >= kth[row] - 1e-5))
            for row, ids in enumerate(found)
        )
        print(f"| {label} | {setting} | {share} | {hits / (k * len(queries)):.3f} | {per:.2f} |")
        faiss.omp_set_num_threads(cores)

    for m in [int(x) for x in args.hnsw_m.split(",") if x]:
        graph = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = dense.HNSW_EF_CONSTRUCTION
        started = time.perf_counter()
        graph.add(vectors)
        label = f"HNSW M {m} (built in {time.perf_counter() - started:.1f} s)"
        for ef in [int(x) for x in args.ef.split(",") if x]:
            graph.hnsw.efSearch = ef
            measure(graph, label, f"efSearch {ef}", "—")
    for nlist in [int(x) for x in args.lists.split(",") if x] or [round(4 * math.sqrt(n))]:
        ivf = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT
        )
        ivf.cp.niter = 10
        ivf.train(vectors[sorted(rng.sample(range(n), min(n, 40 * nlist)))])
        ivf.add(vectors)
        for nprobe in [int(x) for x in args.probes.split(",") if x]:
            if nprobe <= nlist:
                ivf.nprobe = nprobe
                measure(ivf, f"IVF {nlist} lists", f"nprobe {nprobe}", f"{nprobe / nlist:.1%}")


if __name__ == "__main__":
    main()

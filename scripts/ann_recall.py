"""Recall@10 and latency of IVF against exact search over an index's own passage vectors.

How ``index/dense.py``'s IVF settings were chosen: for an index already built (any
model), this trains IVF indexes of several sizes on its passage vectors, as the
build does, and for each number of lists probed prints recall@10 against exact
inner-product search and the time per query, over questions embedded with the
index's model (lines of a JSONL file's ``q``, or random sentences of the index).

Usage::

    python scripts/ann_recall.py --index /tmp/idx [--questions qa.jsonl] [--lists 566,1132]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path, help="JSONL with a 'q' per line")
    parser.add_argument("--count", type=int, default=300, help="questions (default 300)")
    parser.add_argument("--lists", default="", help="nlist values (default: the build's)")
    parser.add_argument("--probes", default="4,8,16,32,64,128")
    parser.add_argument("--backend", default=None, help="embedding backend")
    args = parser.parse_args()

    import faiss
    import numpy as np

    from index import dense
    from index.embeddings import Embedder
    from index.store import load_index

    stored = load_index(args.index)
    vectors = np.ascontiguousarray(stored.passage_vectors[:], dtype=np.float32)
    n = len(vectors)
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
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    kth = np.take_along_axis(queries @ vectors.T, exact, axis=1)[:, -1]
    default = max(
        1, min(n // dense.IVF_TRAIN_PER_LIST, round(dense.IVF_LISTS_PER_SQRT * math.sqrt(n)))
    )
    lists = [int(x) for x in args.lists.split(",") if x] or [default]
    print(f"{n:,} passages, {len(queries)} questions, model {stored.manifest.model}")
    print("| nlist | nprobe | share probed | recall@10 | ms / query |")
    print("|---|---|---|---|---|")
    for nlist in lists:
        folder = Path(f"/tmp/ann-recall-{nlist}")
        folder.mkdir(exist_ok=True)
        saved = dense.IVF_LISTS_PER_SQRT
        dense.IVF_LISTS_PER_SQRT = nlist / math.sqrt(n)
        try:
            dense.IVFIndex.build(vectors, folder)
        finally:
            dense.IVF_LISTS_PER_SQRT = saved
        index = faiss.read_index(str(folder / dense.IVF_FILE), faiss.IO_FLAG_MMAP)
        faiss.omp_set_num_threads(1)
        for nprobe in [int(x) for x in args.probes.split(",")]:
            if nprobe > index.nlist:
                continue
            index.nprobe = nprobe
            started = time.perf_counter()
            found = np.vstack([index.search(q.reshape(1, -1), k)[1] for q in queries])
            per = (time.perf_counter() - started) / len(queries) * 1000
            hits = 0
            for row, ids in enumerate(found):
                ids = ids[ids >= 0]
                hits += int(np.count_nonzero(vectors[ids] @ queries[row] >= kth[row] - 1e-5))
            recall = hits / (k * len(queries))
            share = nprobe / index.nlist
            print(f"| {index.nlist} | {nprobe} | {share:.1%} | {recall:.3f} | {per:.2f} |")


if __name__ == "__main__":
    main()

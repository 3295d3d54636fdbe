"""The segmented store for real: approximate search, appends, tombstones, merges, killed updates.

Built with the real model and real FAISS, like the rest of the suite; the corpus
that gets an approximate (HNSW) index is the 16 Wikipedia articles of
``../shared/eval/squad-dev16`` (726 passages) with the size threshold lowered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from index import QuoteIndex, dense
from index.build import _New, _Old, _plan_segments, build_index, is_up_to_date
from index.corpus import Article, CorpusReader, KnownFile, Unchanged, file_stat
from index.lexical import LexicalIndex, Postings, PostingsWriter, tokenize
from index.store import IndexDamaged, load_index
from index.windows import read_windows
from tests.conftest import CORPUS, MODEL, ROOT, SHARED, needs_shared, write_article

SQUAD = SHARED / "eval" / "squad-dev16"
WIRE = (
    "Officials said the new desalination plant in Port Avery will supply 40,000 homes "
    "with drinking water from next spring, after two years of construction delays."
)
RECALL_K = 10


def _build(corpus: Path, index_dir: Path, embedder, **kw):
    return build_index(corpus, index_dir, MODEL, embedder=embedder, progress=False, **kw)


def _segments(index_dir: Path) -> list[Path]:
    return sorted((index_dir / "current").resolve().glob("seg-*"))


# ------------------------------------------------------------------ approximate search


@pytest.fixture(scope="module")
def squad_index(tmp_path_factory, embedder) -> Path:
    corpus = needs_shared(SQUAD / "corpus")
    index_dir = tmp_path_factory.mktemp("squad") / "index"
    _build(corpus, index_dir, embedder, ann_min=500)
    return index_dir


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ vectors.T
    return np.sort(scores, axis=1)[:, ::-1][:, :k]


def test_hnsw_finds_what_exact_search_finds(squad_index, embedder):
    """Recall@10 of the HNSW index against exact inner product, on real questions."""
    stored = load_index(squad_index)
    (segment,) = stored.segments
    assert segment.dense.name == "hnsw"
    assert not (segment.directory / "passage-vectors.npy").exists()  # held once, in its file
    lines = (SQUAD / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["q"] for line in lines[::20]][:250]
    queries = np.vstack([embedder.encode_query(q) for q in questions])
    vectors = np.asarray(stored.passage_vectors[:])
    kth = _exact_top(vectors, queries, RECALL_K)[:, -1]
    scores, ids = stored.faiss_index.search(queries, RECALL_K)
    assert (ids >= 0).all()
    found = sum(
        int(np.count_nonzero(vectors[row_ids] @ q >= kth[n] - 1e-5))
        for n, (q, row_ids) in enumerate(zip(queries, ids, strict=True))
    )
    recall = found / (RECALL_K * len(queries))
    assert recall >= 0.98, recall
    # The scores it gives are the vectors' own inner products.
    assert np.allclose(scores[:, 0], np.einsum("ij,ij->i", vectors[ids[:, 0]], queries), atol=1e-5)
    answer = QuoteIndex(squad_index, MODEL, embedder=embedder).answer(
        "What did the 1973 oil crisis embargo target?"
    )
    assert answer.found


def test_a_damaged_hnsw_file_is_found(squad_index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(squad_index, copy, symlinks=True)
    (graph,) = (copy / "current").resolve().glob(f"seg-*/dense/{dense.HNSW_FILE}")
    data = bytearray(graph.read_bytes())
    data[len(data) // 3] ^= 0x10
    graph.write_bytes(bytes(data))
    with pytest.raises(IndexDamaged, match=r"dense/hnsw\.faiss does not match its checksum"):
        load_index(copy)


@pytest.mark.parametrize("name", ["exact", "hnsw"])
def test_dense_backends_agree_with_numpy(name, tmp_path):
    """One contract for every backend: the best k, best first, removed rows left out."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, 4000)] + 0.3 * rng.standard_normal((4000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[rng.integers(0, 4000, 50)] + 0.05
    live = np.ones(4000, dtype=bool)
    live[::3] = False
    cls = dense.backend(name)
    settings = cls.build(vectors, tmp_path)
    index = cls.load(None if cls.holds_vectors else vectors, tmp_path, settings)
    assert np.array_equal(index.vectors, vectors)
    reference = dense.NumpyIndex(vectors)
    for mask in (None, live):
        _want_scores, want = reference.search(queries, 10, mask)
        got_scores, got = index.search(queries, 10, mask)
        assert got.shape == want.shape == (50, 10)
        if mask is not None:
            assert mask[got[got >= 0]].all()
        if name == "exact":
            assert np.array_equal(got, want)
        else:
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
            assert recall >= 0.9
        assert (np.diff(got_scores, axis=1) <= 1e-6).all()


# ------------------------------------------------------------------ appending


def _copy_seed(corpus: Path) -> None:
    corpus.mkdir(parents=True)
    for path in CORPUS.glob("*.md"):
        shutil.copy(path, corpus / path.name)


def test_append_then_search_finds_the_new_article_and_reload_sees_it(tmp_path, embedder):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    _copy_seed(corpus)
    _build(corpus, index_dir, embedder)
    bot = QuoteIndex(index_dir, MODEL, embedder=embedder)
    assert not bot.answer("How many homes will the desalination plant supply?").found
    (old_segment,) = _segments(index_dir)
    old_files = {
        p.relative_to(old_segment): p.stat().st_ino for p in old_segment.rglob("*") if p.is_file()
    }

    write_article(corpus, "zz-plant.md", WIRE, title="Plant opens", publisher="Avery Post")
    report = _build(corpus, index_dir, embedder)
    assert (report.embedded_articles, report.reused_articles) == (1, 5)
    segments = _segments(index_dir)
    assert len(segments) == 2 and old_segment.name in {s.name for s in segments}
    kept = next(s for s in segments if s.name == old_segment.name)
    # The old segment's files are the very same files (linked, not written again).
    assert {p.relative_to(kept): p.stat().st_ino for p in kept.rglob("*") if p.is_file()} == (
        old_files
    )

    reloaded = bot.reload()
    assert reloaded.build_id != bot.build_id
    answer = reloaded.answer("How many homes will the desalination plant supply?")
    assert answer.found and "40,000" in answer.quotes[0].text
    assert answer.quotes[0].sources[0].path == "zz-plant.md"
    assert [s.path for s in reloaded.articles()][-1] == "zz-plant.md"
    context = reloaded.context(answer.quotes[0].ref)
    assert context is not None and WIRE in context.passages[context.focus]
    assert is_up_to_date(corpus, index_dir, MODEL)


def test_removed_and_changed_articles_leave_the_index_and_scores_match_a_fresh_build(
    tmp_path, embedder
):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    _copy_seed(corpus)
    write_article(corpus, "plant.md", WIRE, title="Plant opens", publisher="Avery Post")
    _build(corpus, index_dir, embedder)
    (corpus / "plant.md").unlink()
    changed = corpus / "mek-iran-stop-executions.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nA closing line.\n", "utf-8")
    report = _build(corpus, index_dir, embedder)
    assert (report.articles, report.embedded_articles) == (5, 1)
    stored = load_index(index_dir)
    assert "plant.md" not in {a.path for a in stored.articles}
    assert "closing line" in next(a.body for a in stored.articles if a.path == changed.name)
    assert (
        QuoteIndex(index_dir, MODEL, embedder=embedder)
        .answer("How many homes will the desalination plant supply?")
        .found
        is False
    )

    fresh_dir = tmp_path / "fresh"
    _build(corpus, fresh_dir, embedder)
    fresh = load_index(fresh_dir)
    assert [a.path for a in stored.articles] == [a.path for a in fresh.articles]
    assert [(p.article, p.start, p.end) for p in stored.passages] == [
        (p.article, p.start, p.end) for p in fresh.passages
    ]
    tokens = tokenize("executions of political prisoners in Iran resolution votes")
    for a, b in (
        (stored.passage_bm25, fresh.passage_bm25),
        (stored.article_bm25, fresh.article_bm25),
    ):
        assert np.allclose(a.scores(tokens), b.scores(tokens), atol=1e-6)
        assert a.document_frequencies() == b.document_frequencies()
    assert np.allclose(stored.sentence_vectors[:], fresh.sentence_vectors[:], atol=2e-3)
    # The same vectors, to what int8 activations allow: a text's vector moves by a
    # quantization step or so with the batch it was embedded in (cosine > 0.9999).
    cosines = np.sum(
        np.asarray(stored.passage_vectors[:]) * np.asarray(fresh.passage_vectors[:]), axis=1
    )
    assert cosines.min() > 0.9999, cosines.min()
    # the long sentences' windows came along with the articles copied from the old build
    for i in range(len(stored.passages)):
        kept = read_windows([stored.passage_windows(i)], 384)
        fresh_windows = read_windows([fresh.passage_windows(i)], 384)
        assert kept[1].tolist() == fresh_windows[1].tolist()
        assert np.allclose(kept[3], fresh_windows[3], atol=2)
    windows = read_windows([stored.passage_windows(i) for i in range(len(stored.passages))], 384)
    assert len(windows[1]) > 50


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from index import store
    from index.build import build_index
    from index.embeddings import Embedder

    corpus, index_dir, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def die(message=""):
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "swap":  # between the new build's rename and the switch of `current`
        real = store.os.replace
        def replace(src, dst):
            if Path(dst).name == "current":
                die()
            return real(src, dst)
        store.os.replace = replace
    on_stage = (lambda message: message.startswith(stage) and die()) if stage != "swap" else None
    build_index(corpus, index_dir, embedder=Embedder({model!r}), progress=False, on_stage=on_stage)
    """
)


@pytest.mark.parametrize("stage", ["building", "writing", "swap"])
def test_a_killed_append_leaves_the_old_index_serving(tmp_path, embedder, stage):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    _copy_seed(corpus)
    _build(corpus, index_dir, embedder)
    before = load_index(index_dir).manifest.build_id
    write_article(corpus, "zz-plant.md", WIRE, title="Plant opens", publisher="Avery Post")
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(model=MODEL), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, str(script), str(corpus), str(index_dir), stage],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr

    assert load_index(index_dir).manifest.build_id == before
    index = QuoteIndex(index_dir, MODEL, embedder=embedder)
    assert index.answer("How many votes did the 63rd resolution get?").found
    assert not index.answer("How many homes will the desalination plant supply?").found
    assert not is_up_to_date(corpus, index_dir, MODEL)
    report = _build(corpus, index_dir, embedder)
    assert report.embedded_articles == 1
    assert [p.name for p in (index_dir / "builds").iterdir()] == [report.build_dir.name]
    assert (
        QuoteIndex(index_dir, MODEL, embedder=embedder)
        .answer("How many homes will the desalination plant supply?")
        .found
    )


def test_an_archive_that_grew_is_read_from_where_the_last_build_stopped(tmp_path, embedder):
    archive = tmp_path / "export.jsonl"
    lines = [
        json.dumps({"id": f"s{n}", "title": f"Story {n}", "text": f"Item {n}."}) for n in range(4)
    ]
    archive.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    _build(archive, tmp_path / "index", embedder)
    manifest = load_index(tmp_path / "index").manifest
    stat = manifest.file_stats["export.jsonl"]
    known = KnownFile(
        stat=tuple(file_stat(archive.stat()).values()),
        sha256=manifest.files["export.jsonl"],
        lines=stat["lines"],
        settled=True,
        ids=lambda: {f"export.jsonl#s{n}": n + 1 for n in range(4)},
    )
    with open(archive, "a", encoding="utf-8") as out:
        out.write(json.dumps({"id": "s9", "title": "Plant", "text": WIRE}) + "\n")
        out.write(json.dumps({"id": "s1", "title": "Again", "text": "A repeated id."}) + "\n")
    items = list(CorpusReader(archive, known={"export.jsonl": known}))
    assert items[0] == Unchanged("export.jsonl", 4)
    assert [getattr(i, "path", None) for i in items[1:]] == ["export.jsonl#s9", "export.jsonl"]
    assert items[2].reason == "repeats the id of line 2" and items[2].line == 6

    report = _build(archive, tmp_path / "index", embedder)
    assert (report.embedded_articles, report.reused_articles, len(report.skipped)) == (1, 4, 1)
    assert is_up_to_date(archive, tmp_path / "index", MODEL)


# ------------------------------------------------------------------ pieces


def test_the_embedded_store_is_a_storage_backend(seed_index_dir):
    from index.backend import LexicalSearch, NearestPassages, PassageStore, VectorRows, open_store

    stored = open_store(seed_index_dir)
    assert isinstance(stored, PassageStore)
    assert isinstance(stored.faiss_index, NearestPassages)
    assert isinstance(stored.passage_bm25, LexicalSearch)
    assert isinstance(stored.sentence_vectors, VectorRows)
    assert stored.manifest.store == "embedded"


def test_bm25_scores_are_bm25s_own(tmp_path):
    """The store's BM25 gives bm25s's scores (which the index used before), per segment too."""
    import bm25s

    texts = []
    for path in sorted(CORPUS.glob("*.md")):
        texts += [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    texts += ["", "the of and"]
    model = bm25s.BM25()
    model.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
    ours = LexicalIndex.build(texts)
    half = len(texts) // 2
    parts = []
    for chunk, name in ((texts[:half], "a"), (texts[half:], "b")):
        writer = PostingsWriter()
        for text in chunk:
            writer.add(tokenize(text))
        writer.finish().save(tmp_path / name)
        parts.append(Postings.load(tmp_path / name))
    split = LexicalIndex(
        parts,
        [None, np.arange(len(texts) - half) + half],
        len(texts),
        (
            np.repeat([0, 1], [half, len(texts) - half]),
            np.concatenate([np.arange(half), np.arange(len(texts) - half)]),
        ),
    )
    for text in texts[::3]:
        query = [*tokenize(text)[:6], "unknownword"]
        known = [model.vocab_dict[t] for t in query if t in model.vocab_dict]
        want = np.asarray(model.get_scores_from_ids(known), dtype=np.float32) if known else None
        for index in (ours, split):
            got = index.scores(query)
            assert np.array_equal(got, want) if want is not None else not got.any()
            ids, scores = index.search(query, 5)
            if want is not None and want.max() > 0:
                assert np.isclose(scores[0], want.max())
                assert np.allclose(index.scores_of(query, ids), scores)
                holding = index.holding(query, ids)
                for row, doc in enumerate(ids.tolist()):
                    assert holding[row].tolist() == [t in index.tokens_of(doc) for t in query]
            # every document, in no order, one twice: the postings give what the word lists do
            everyone = np.concatenate([np.arange(len(texts))[::-1], [0]])
            holding = index.holding(query, everyone)
            for row, doc in enumerate(everyone.tolist()):
                assert holding[row].tolist() == [t in index.tokens_of(doc) for t in query]
    assert ours.document_frequencies() == split.document_frequencies()


def test_bm25_threads_asking_at_once_each_get_their_own_scores():
    """Each thread keeps its own score array: questions asked together do not mix."""
    from concurrent.futures import ThreadPoolExecutor

    texts = []
    for path in sorted(CORPUS.glob("*.md")):
        texts += [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    queries = [tokenize(t)[:5] for t in texts[::2] if tokenize(t)]
    alone = LexicalIndex.build(texts)
    want = {tuple(q): (alone.scores(q), alone.search(q, 5)) for q in queries}
    shared = LexicalIndex.build(texts)

    def ask(query: list[str]) -> bool:
        ids, scores = shared.search(query, 5)
        every = shared.scores(query)
        again = shared.scores_of(query, ids)
        expected_scores, (expected_ids, _) = want[tuple(query)]
        return (
            np.array_equal(every, expected_scores)
            and np.array_equal(ids, expected_ids)
            and np.array_equal(again, scores)
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(ask, queries * 5))


def test_small_segments_are_merged_and_emptied_ones_rewritten():
    class Old:
        def __init__(self, sizes):
            self.segments = [type("S", (), {"articles": [0] * n})() for n in sizes]
            self._where = [s for s, n in enumerate(sizes) for _ in range(n)]

        def article_location(self, a):
            return self._where[a], 0

    new = _New(Article("n.md", "t", "b"), "n.md")
    old = Old([100_000, 30, 30, 30])
    everything = [_Old(a, "f") for a in range(100_090)]
    keep, rewrite = _plan_segments([*everything, new], old, retokenize=False)
    assert keep == [0] and rewrite == {1, 2, 3}  # four small ones (with the new) become one
    keep, rewrite = _plan_segments(everything[:60_000] + everything[100_000:], old, False)
    assert rewrite == {0}  # lost 40% of its articles
    keep, rewrite = _plan_segments(everything[:100_060], old, retokenize=False)
    assert keep == [0, 1, 2] and rewrite == set()  # segment 3 gone entirely: nothing to copy

"""Building the index: corpus files → articles → passages → vectors → a new build on disk.

Embedding is the slow part, so a rebuild reuses the vectors of every article
whose file is unchanged (same content hash, same model, same passage
settings) and embeds only new or changed articles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.corpus import Skipped, corpus_files, file_hash, read_corpus
from index.embeddings import Embedder, canonical_model_name
from index.lexical import TOKENIZER, LexicalIndex
from index.passages import Passage, split_article
from index.store import (
    FORMAT_VERSION,
    IndexLoadError,
    Manifest,
    StoredIndex,
    build_lock,
    load_index,
    new_build_id,
    read_manifest,
    write_index,
)

log = logging.getLogger(__name__)
PASSAGE_SETTINGS_VERSION = 1


class StrictBuildError(RuntimeError):
    """``--strict`` was given and some corpus files could not be read."""


@dataclass
class BuildReport:
    articles: int
    passages: int
    sentences: int
    embedded_articles: int
    reused_articles: int
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    build_dir: Path | None = None


@dataclass
class _Reusable:
    passages: list[Passage]
    passage_vectors: np.ndarray
    sentence_vectors: np.ndarray


def passage_settings(embedder: Embedder) -> dict[str, object]:
    return {"version": PASSAGE_SETTINGS_VERSION, "window_tokens": embedder.window}


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    model: str | None = None,
    *,
    embedder: Embedder | None = None,
    strict: bool = False,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build (or incrementally rebuild) the index of ``corpus_dir`` into ``index_dir``."""
    started = time.perf_counter()
    say = on_stage or (lambda _msg: None)
    corpus = read_corpus(corpus_dir)
    for skipped in corpus.skipped:
        log.warning("skipped %s: %s", skipped.path, skipped.reason)
    if strict and corpus.skipped:
        names = "; ".join(f"{s.path}: {s.reason}" for s in corpus.skipped)
        raise StrictBuildError(f"{len(corpus.skipped)} file(s) could not be read: {names}")
    embedder = embedder or Embedder(model or "")
    if model and canonical_model_name(model) != embedder.name:
        raise ValueError(f"embedder is {embedder.name}, asked for {model}")
    settings = passage_settings(embedder)

    with build_lock(index_dir):
        reusable = _reusable_articles(index_dir, embedder, settings)
        articles = list(corpus.articles)
        passages: list[Passage] = []
        p_vectors: list[np.ndarray] = []
        s_vectors: list[np.ndarray] = []
        fresh: list[tuple[int, list[Passage]]] = []
        for number, article in enumerate(articles):
            old = reusable.get(article.content_hash)
            if old is None:
                fresh.append(
                    (
                        number,
                        split_article(article.body, number, embedder.count_tokens, embedder.window),
                    )
                )
        reused = len(articles) - len(fresh)
        say(f"embedding {len(fresh)} new or changed article(s), reusing {reused}")
        embedded = _embed(fresh, embedder, progress)
        for number, article in enumerate(articles):
            old = reusable.get(article.content_hash)
            if old is not None:
                passages.extend(_renumber(old.passages, number))
                p_vectors.append(old.passage_vectors)
                s_vectors.append(old.sentence_vectors)
            else:
                new_passages, pv, sv = embedded[number]
                passages.extend(new_passages)
                p_vectors.append(pv)
                s_vectors.append(sv)
        dim = embedder.dimension
        passage_vectors = np.vstack(p_vectors) if p_vectors else np.zeros((0, dim), np.float32)
        sentence_vectors = np.vstack(s_vectors) if s_vectors else np.zeros((0, dim), np.float32)
        say("building the lexical indexes")
        passage_bm25 = LexicalIndex.build([p.text for p in passages] or [""])
        article_bm25 = LexicalIndex.build([f"{a.title}\n{a.body}" for a in articles] or [""])
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            build_id=new_build_id(),
            model=embedder.name,
            dimension=dim,
            normalized=True,
            metric="inner_product",
            tokenizer=TOKENIZER,
            passage_settings=settings,
            files={a.path: a.content_hash for a in articles},
            articles=len(articles),
            passages=len(passages),
            sentences=len(sentence_vectors),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - started, 3),
            skipped=[
                {"path": s.path, "reason": s.reason, "sha256": _hash_or_empty(corpus_dir / s.path)}
                for s in corpus.skipped
            ],
        )
        stored = StoredIndex(
            manifest,
            articles,
            passages,
            passage_vectors,
            sentence_vectors,
            passage_bm25,
            article_bm25,
        )
        say("writing the index")
        build_dir = write_index(index_dir, stored)
    return BuildReport(
        articles=len(articles),
        passages=len(passages),
        sentences=len(sentence_vectors),
        embedded_articles=len(fresh),
        reused_articles=len(articles) - len(fresh),
        skipped=list(corpus.skipped),
        seconds=time.perf_counter() - started,
        build_dir=build_dir,
    )


def is_up_to_date(corpus_dir: Path, index_dir: Path, model: str) -> bool:
    """Whether the index holds exactly the corpus's current files, built with ``model``.

    Cheap (hashes files, loads no model), so a container can call it at every start.
    """
    try:
        manifest = read_manifest(index_dir)
    except IndexLoadError:
        return False
    if manifest.format_version != FORMAT_VERSION or manifest.model != canonical_model_name(model):
        return False
    if not corpus_dir.is_dir():
        return False
    current = {
        path.relative_to(corpus_dir).as_posix(): file_hash(path.read_bytes())
        for path in corpus_files(corpus_dir)
    }
    # Skipped files count too: a file fixed since the last build must be read again.
    indexed = {**manifest.files, **{s["path"]: s.get("sha256", "") for s in manifest.skipped}}
    return current == indexed


def _hash_or_empty(path: Path) -> str:
    try:
        return file_hash(path.read_bytes())
    except OSError:
        return ""


def _reusable_articles(
    index_dir: Path, embedder: Embedder, settings: dict[str, object]
) -> dict[str, _Reusable]:
    """Vectors of the previous build, per article content hash, when they are still valid."""
    try:
        old = load_index(index_dir)
    except IndexLoadError as err:
        if (index_dir / "current").exists():
            log.warning("previous index not reused: %s", err)
        return {}
    m = old.manifest
    if (m.model, m.dimension, m.passage_settings) != (embedder.name, embedder.dimension, settings):
        log.info("previous index built with other model or settings; embedding everything")
        return {}
    out: dict[str, _Reusable] = {}
    first_sentence = 0
    by_article: dict[int, list[int]] = {}
    sentence_start: list[int] = []
    for i, passage in enumerate(old.passages):
        by_article.setdefault(passage.article, []).append(i)
        sentence_start.append(first_sentence)
        first_sentence += len(passage.sentences)
    for number, article in enumerate(old.articles):
        ids = by_article.get(number, [])
        if not ids:
            continue
        s_from = sentence_start[ids[0]]
        s_to = sentence_start[ids[-1]] + len(old.passages[ids[-1]].sentences)
        out[article.content_hash] = _Reusable(
            [old.passages[i] for i in ids],
            old.passage_vectors[ids[0] : ids[-1] + 1],
            old.sentence_vectors[s_from:s_to],
        )
    return out


def _renumber(passages: list[Passage], article: int) -> list[Passage]:
    return [Passage(article, p.start, p.end, p.text, p.sentences) for p in passages]


def _embed(
    fresh: list[tuple[int, list[Passage]]], embedder: Embedder, progress: bool
) -> dict[int, tuple[list[Passage], np.ndarray, np.ndarray]]:
    """Embed the passages and sentences of new articles, with one progress bar for all."""
    passage_texts = [p.text for _, ps in fresh for p in ps]
    sentence_texts = [t for _, ps in fresh for p in ps for t in p.sentence_texts()]
    unique = list(dict.fromkeys(passage_texts + sentence_texts))
    vectors = np.zeros((len(unique), embedder.dimension), dtype=np.float32)
    # Longest first, as sentence-transformers orders one encode call: batches of
    # like-length texts waste no work on padding.
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i]))
    batch = 64
    with tqdm(
        total=len(unique), unit="text", desc="embedding", disable=not progress or not unique
    ) as bar:
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            vectors[rows] = embedder.encode([unique[i] for i in rows], batch_size=batch)
            bar.update(len(rows))
    row = {text: i for i, text in enumerate(unique)}
    out: dict[int, tuple[list[Passage], np.ndarray, np.ndarray]] = {}
    dim = embedder.dimension
    for number, passages in fresh:
        pv = (
            vectors[[row[p.text] for p in passages]] if passages else np.zeros((0, dim), np.float32)
        )
        sents = [t for p in passages for t in p.sentence_texts()]
        sv = vectors[[row[t] for t in sents]] if sents else np.zeros((0, dim), np.float32)
        out[number] = (passages, pv, sv)
    return out

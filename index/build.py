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
from typing import Any

import numpy as np
from tqdm import tqdm

from index.corpus import (
    SUFFIXES,
    Article,
    CorpusReader,
    Skipped,
    corpus_files,
    relative_name,
    source_hash,
)
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
    verify_build,
    write_index,
)

log = logging.getLogger(__name__)
PASSAGE_SETTINGS_VERSION = 1


class StrictBuildError(RuntimeError):
    """``--strict`` was given and some corpus files could not be read."""


class EmptyCorpusError(RuntimeError):
    """The corpus holds no readable article: almost surely the wrong folder, so no build."""


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
    on_skip: Callable[[Skipped], None] | None = None,
) -> BuildReport:
    """Build (or incrementally rebuild) the index of ``corpus_dir`` into ``index_dir``.

    Each file or archive line that cannot be read is passed to ``on_skip`` as it is
    met (logged as a warning without one), once. A corpus with no article at all
    raises :class:`EmptyCorpusError` and leaves the index as it was.
    """
    started = time.perf_counter()
    say = on_stage or (lambda _msg: None)
    skip = on_skip or (lambda s: log.warning("skipped %s: %s", s.where, s.reason))
    reader = CorpusReader(corpus_dir)
    articles, skipped = _read(reader, skip, progress)
    if strict and skipped:
        names = "; ".join(f"{s.where}: {s.reason}" for s in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise StrictBuildError(
            f"{len(skipped)} file(s) or line(s) could not be read: {names}{more}"
        )
    if not articles:
        raise EmptyCorpusError(_empty_corpus_message(corpus_dir, index_dir, reader, skipped))
    embedder = embedder or Embedder(model or "")
    if model and canonical_model_name(model) != embedder.name:
        raise ValueError(f"embedder is {embedder.name}, asked for {model}")
    settings = passage_settings(embedder)

    with build_lock(index_dir):
        reusable = _reusable_articles(index_dir, embedder, settings)
        passages: list[Passage] = []
        p_vectors: list[np.ndarray] = []
        s_vectors: list[np.ndarray] = []
        new = [n for n, article in enumerate(articles) if article.content_hash not in reusable]
        if new:
            say(f"splitting {len(new)} new or changed article(s) into passages")
        fresh = _split(articles, new, embedder, progress)
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
            files=reader.file_hashes,  # every corpus file read, articles or not
            articles=len(articles),
            passages=len(passages),
            sentences=len(sentence_vectors),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - started, 3),
            skipped=[_skipped_json(s, reader.file_hashes) for s in skipped],
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
        skipped=skipped,
        seconds=time.perf_counter() - started,
        build_dir=build_dir,
    )


def is_up_to_date(corpus_dir: Path, index_dir: Path, model: str) -> bool:
    """Whether the index holds exactly the corpus's current files, built with ``model``.

    Cheap (hashes files, streamed; loads no model), so a container can call it at every start.
    """
    try:
        manifest = read_manifest(index_dir)
        verify_build(index_dir, manifest)  # a damaged index is rebuilt, never "up to date"
    except IndexLoadError:
        return False
    if manifest.format_version != FORMAT_VERSION or manifest.model != canonical_model_name(model):
        return False
    if manifest.passage_settings.get("version") != PASSAGE_SETTINGS_VERSION:
        return False
    if manifest.tokenizer != TOKENIZER:
        return False  # the lexical indexes hold words split another way
    if not corpus_dir.exists():
        return False
    current = {relative_name(corpus_dir, p): source_hash(p) for p in corpus_files(corpus_dir)}
    # Skipped files count too (older builds list them only there): a file fixed since
    # the last build must be read again. A skipped archive line is its file's business.
    indexed = {
        **manifest.files,
        **{s["path"]: s.get("sha256", "") for s in manifest.skipped if "line" not in s},
    }
    return current == indexed


def _read(
    reader: CorpusReader, skip: Callable[[Skipped], None], progress: bool
) -> tuple[list[Article], list[Skipped]]:
    """Stream the corpus in, reporting each unreadable file or line as it comes."""
    articles: list[Article] = []
    skipped: list[Skipped] = []
    with tqdm(
        total=reader.total_bytes, unit="B", unit_scale=True, desc="reading", disable=not progress
    ) as bar:
        for item in reader:
            if isinstance(item, Skipped):
                skipped.append(item)
                skip(item)
            else:
                articles.append(item)
            bar.update(reader.bytes_read - bar.n)
        bar.update(reader.bytes_read - bar.n)
    return articles, skipped


def _split(
    articles: list[Article], numbers: list[int], embedder: Embedder, progress: bool
) -> list[tuple[int, list[Passage]]]:
    """Passages of the articles to embed; sentence splitting is slow, so it shows progress."""
    out: list[tuple[int, list[Passage]]] = []
    for number in tqdm(numbers, unit="article", desc="splitting", disable=not progress):
        body = articles[number].body
        out.append((number, split_article(body, number, embedder.count_tokens, embedder.window)))
    return out


def _empty_corpus_message(
    corpus_dir: Path, index_dir: Path, reader: CorpusReader, skipped: list[Skipped]
) -> str:
    if not reader.files:
        found = f"no article files in {corpus_dir} (looked for {', '.join(SUFFIXES)})"
    else:
        found = f"no readable article in {corpus_dir} ({len(skipped)} file(s) or line(s) skipped)"
    return f"{found}; nothing was built, the index at {index_dir} is left as it was"


def _skipped_json(skipped: Skipped, hashes: dict[str, str]) -> dict[str, Any]:
    if skipped.line is not None:
        return {"path": skipped.path, "line": skipped.line, "reason": skipped.reason}
    return {"path": skipped.path, "reason": skipped.reason, "sha256": hashes.get(skipped.path, "")}


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

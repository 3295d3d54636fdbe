"""Building the index: corpus files → articles → passages → vectors → a new build on disk.

Embedding is the slow part, so a rebuild embeds only new or changed articles.
It does not even read what has not changed: a corpus file whose size, times and
inode are as the last build recorded them keeps its articles as they are, and an
archive that only grew is read from where the last build stopped. The articles
that are new or changed go into one new segment (``index/segments.py``); the
previous build's segments are kept as they are, with the articles removed or
replaced since left out of the new build's view (``index/store.py``). So adding
ten articles to a million passages costs their embedding and a few seconds.

Segments are merged when it pays: a segment that has lost more than
``MAX_DEAD_SHARE`` of its articles, or ``MERGE_FACTOR`` segments of about the same
size, are copied (vectors and words as they are, nothing embedded again) into the
new segment, so a long run of small updates leaves a handful of segments.

Sentence splitting (pysbd) and word counting run in worker processes, one per
core, article chunk by chunk, while this process embeds the chunks already split.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from index import dense
from index.analysis import ANALYSIS, analysis_record
from index.arrays import mapped
from index.corpus import (
    SUFFIXES,
    Article,
    CorpusReader,
    KnownFile,
    Skipped,
    Unchanged,
    corpus_files,
    file_stat,
    relative_name,
    source_hash,
)
from index.embeddings import Embedder, canonical_model_name
from index.lexical import TOKENIZER, Words, count_words, tokenize
from index.passages import split_article
from index.segments import PassageSpans, SegmentWriter
from index.store import (
    FORMAT_VERSION,
    VIEW_DTYPE,
    BuildWriter,
    IndexLoadError,
    Manifest,
    StoredIndex,
    build_dir_of,
    build_lock,
    load_index,
    new_build_id,
    read_manifest,
    verify_build,
)
from index.windows import WINDOWS, sentence_windows, windows_record

log = logging.getLogger(__name__)
PASSAGE_SETTINGS_VERSION = 2  # 2: sentences run together without a space are cut apart
# A file whose stat changed less than this before the build read it is hashed next
# time even if its stat looks the same (file systems with coarse clocks).
SETTLED_NS = 2_000_000_000
CHUNK_CHARS = 400_000  # text per chunk split by one worker (~100 news articles)
POOL_MIN_CHARS = 2_000_000  # less new text than this is split in this process
MAX_DEAD_SHARE = 0.3  # a segment that lost more of its articles is rewritten
MERGE_FACTOR = 4  # this many segments of one size class are merged into one
MERGE_BASE = 100  # articles: the smallest size class
EMBED_BATCH = 64
RECENT_VECTORS = 50_000  # texts whose vectors a build keeps for repeats (~80 MB)


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
    segments: int = 0
    merged_segments: int = 0


@dataclass
class _Old:
    """An article of the previous build kept in the new one."""

    article: int  # its number in the previous build
    file: str
    path: str | None = None  # its new corpus path, if it moved


@dataclass
class _New:
    """An article to split and embed (or, if its text is already stored, to copy)."""

    article: Article
    file: str


def passage_settings(embedder: Embedder) -> dict[str, object]:
    return {
        "version": PASSAGE_SETTINGS_VERSION,
        "window_tokens": embedder.window,
        "sentence_windows": WINDOWS,
    }


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
    workers: int | None = None,
    ann_min: int | None = None,
) -> BuildReport:
    """Build (or incrementally rebuild) the index of ``corpus_dir`` into ``index_dir``.

    Each file or archive line that cannot be read is passed to ``on_skip`` as it is
    met (logged as a warning without one), once. A corpus with no article at all
    raises :class:`EmptyCorpusError` and leaves the index as it was. ``workers``:
    processes that split sentences (default: one per core); ``ann_min``: passages
    from which a segment gets an approximate vector index (default ``dense.ANN_MIN_VECTORS``).
    """
    started = time.perf_counter()
    read_at = time.time_ns()
    say = on_stage or (lambda _msg: None)
    skip = on_skip or (lambda s: log.warning("skipped %s: %s", s.where, s.reason))
    with build_lock(index_dir):
        previous = _previous_build(index_dir)
        reader = CorpusReader(corpus_dir, known=_known_files(previous))
        entries, skipped = _read(reader, previous, skip, progress)
        if strict and skipped:
            names = "; ".join(f"{s.where}: {s.reason}" for s in skipped[:5])
            more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            raise StrictBuildError(
                f"{len(skipped)} file(s) or line(s) could not be read: {names}{more}"
            )
        if not entries:
            raise EmptyCorpusError(_empty_corpus_message(corpus_dir, index_dir, reader, skipped))
        embedder = embedder or Embedder(model or "")
        if model and canonical_model_name(model) != embedder.name:
            raise ValueError(f"embedder is {embedder.name}, asked for {model}")
        settings = passage_settings(embedder)
        entries, reusable = _match_previous(entries, previous, embedder, settings)
        retokenize = reusable and previous is not None and previous.manifest.tokenizer != TOKENIZER
        reanalyse = reusable and previous is not None and previous.manifest.analysis != ANALYSIS
        keep, rewrite = _plan_segments(entries, previous, retokenize or reanalyse)

        build_id = new_build_id()
        writer = BuildWriter(index_dir, build_id)
        try:
            file_numbers = {name: i for i, name in enumerate(reader.file_hashes)}
            report, view, paths, segments = _write(
                writer,
                entries,
                file_numbers,
                previous,
                (keep, rewrite, retokenize),
                embedder,
                say,
                progress,
                workers,
                ann_min,
            )
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                build_id=build_id,
                model=embedder.name,
                dimension=embedder.dimension,
                normalized=True,
                metric="inner_product",
                tokenizer=TOKENIZER,
                analysis=ANALYSIS,
                embedding=embedder.vectors,
                passage_settings=settings,
                files=reader.file_hashes,  # every corpus file read, articles or not
                articles=report.articles,
                passages=report.passages,
                sentences=report.sentences,
                built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                build_seconds=round(time.perf_counter() - started, 3),
                skipped=[_skipped_json(s, reader.file_hashes) for s in skipped],
                segments=segments,
                file_stats=reader.file_stats,
                read_at_ns=read_at,
            )
            say("writing the index")
            report.build_dir = writer.commit(manifest, view, paths)
        except BaseException:
            writer.abandon()
            raise
    report.skipped = skipped
    report.seconds = time.perf_counter() - started
    return report


def is_up_to_date(corpus_dir: Path, index_dir: Path, model: str) -> bool:
    """Whether the index holds exactly the corpus's current files, built with ``model``.

    Cheap (loads no model): a corpus file whose stat is as the build recorded it, long
    settled, is not read; any other is hashed, streamed. The index's own files are
    checked as loading checks them, so a damaged index is never "up to date".
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
    if manifest.passage_settings.get("sentence_windows") != WINDOWS:
        return False  # its long sentences are read in other windows, or not at all
    if manifest.tokenizer != TOKENIZER:
        return False  # the lexical indexes hold words split another way
    if manifest.analysis != ANALYSIS:
        return False  # its passages' stored analysis is of another kind (or missing)
    if not corpus_dir.exists():
        return False
    known = _known_from_manifest(manifest)
    current: dict[str, str] = {}
    for path in corpus_files(corpus_dir):
        rel = relative_name(corpus_dir, path)
        recorded = known.get(rel)
        if recorded is not None and recorded.settled:
            try:
                same = tuple(file_stat(path.stat()).values()) == recorded.stat
            except OSError:
                same = False
            if same:
                current[rel] = recorded.sha256
                continue
        current[rel] = source_hash(path)
    # Skipped files count too (older builds list them only there): a file fixed since
    # the last build must be read again. A skipped archive line is its file's business.
    indexed = {
        **manifest.files,
        **{s["path"]: s.get("sha256", "") for s in manifest.skipped if "line" not in s},
    }
    return current == indexed


# ------------------------------------------------------------------ reading


def _previous_build(index_dir: Path) -> StoredIndex | None:
    """The current build, if it loads (checked); None if there is none or it is damaged."""
    try:
        return load_index(index_dir)
    except IndexLoadError as err:
        if (index_dir / "current").exists() or (index_dir / "builds").exists():
            log.warning("previous index not reused: %s", err)
        return None


def _known_from_manifest(
    manifest: Manifest, ids: Callable[[str], dict[str, int]] | None = None
) -> dict[str, KnownFile]:
    known: dict[str, KnownFile] = {}
    limit = manifest.read_at_ns - SETTLED_NS
    for rel, stat in manifest.file_stats.items():
        digest = manifest.files.get(rel, "")
        if not isinstance(stat, dict) or not digest:
            continue
        key = (stat["size"], stat["mtime_ns"], stat["ctime_ns"], stat["inode"])
        known[rel] = KnownFile(
            stat=key,
            sha256=digest,
            lines=int(stat.get("lines", 0)),
            settled=max(stat["mtime_ns"], stat["ctime_ns"]) < limit,
            ids=(lambda rel=rel: ids(rel)) if ids is not None else dict,
        )
    return known


def _known_files(previous: StoredIndex | None) -> dict[str, KnownFile]:
    if previous is None:
        return {}
    by_file = _articles_by_file(previous)

    def ids(rel: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in by_file.get(rel, []):
            s, local = previous.article_location(a)
            line = int(previous.segments[s].articles[local]["line"])
            out[previous.article_path(a)] = line
        return out

    return _known_from_manifest(previous.manifest, ids)


def _articles_by_file(previous: StoredIndex) -> dict[str, list[int]]:
    """The previous build's articles by the corpus file they came from, in corpus order."""
    names = list(previous.manifest.files)
    files = np.asarray(previous.view["file"])
    order = np.argsort(files, kind="stable")
    bounds = np.searchsorted(files[order], np.arange(len(names) + 1))
    return {
        name: order[bounds[i] : bounds[i + 1]].tolist()
        for i, name in enumerate(names)
        if bounds[i + 1] > bounds[i]
    }


def _read(
    reader: CorpusReader,
    previous: StoredIndex | None,
    skip: Callable[[Skipped], None],
    progress: bool,
) -> tuple[list[_Old | _New], list[Skipped]]:
    """Stream the corpus in, reporting each unreadable file or line as it comes.

    A file the previous build read and that has not changed is not read: its
    articles are the previous build's (and its unreadable lines are reported again).
    """
    entries: list[_Old | _New] = []
    skipped: list[Skipped] = []
    by_file = _articles_by_file(previous) if previous is not None else {}
    old_skipped = previous.manifest.skipped if previous is not None else []
    with tqdm(
        total=reader.total_bytes, unit="B", unit_scale=True, desc="reading", disable=not progress
    ) as bar:
        for item in reader:
            if isinstance(item, Unchanged):
                entries.extend(_Old(a, item.path) for a in by_file.get(item.path, []))
                for s in old_skipped:
                    if s["path"] == item.path and (
                        item.lines is None or int(s.get("line") or 0) <= item.lines
                    ):
                        again = Skipped(s["path"], s["reason"], s.get("line"))
                        skipped.append(again)
                        skip(again)
            elif isinstance(item, Skipped):
                skipped.append(item)
                skip(item)
            else:
                entries.append(_New(item, _file_of(item.path, reader)))
            bar.update(reader.bytes_read - bar.n)
        bar.update(reader.bytes_read - bar.n)
    return entries, skipped


def _file_of(path: str, reader: CorpusReader) -> str:
    """The corpus file an article path comes from (itself, or an archive's name)."""
    if path in reader.file_stats or path in reader.file_hashes:
        return path
    head, _, _ = path.rpartition("#")
    while head and head not in reader.file_stats:
        head, _, _ = head.rpartition("#")
    return head or path


def _match_previous(
    entries: list[_Old | _New],
    previous: StoredIndex | None,
    embedder: Embedder,
    settings: dict[str, object],
) -> tuple[list[_Old | _New], bool]:
    """Entries with every article whose text the previous build holds taken from it.

    Returns whether the previous build's passages and vectors can be reused at all
    (same model and passage settings); if not, its articles are split and embedded
    again like new ones.
    """
    if previous is None:
        return entries, False
    m = previous.manifest
    if (m.model, m.dimension, m.passage_settings) != (embedder.name, embedder.dimension, settings):
        log.info("previous index built with other model or settings; embedding everything")
        return [
            e if isinstance(e, _New) else _New(_moved(previous.article(e.article), e.path), e.file)
            for e in entries
        ], False
    if not any(isinstance(e, _New) for e in entries):
        return entries, True
    taken = {e.article for e in entries if isinstance(e, _Old)}
    by_hash: dict[str, list[int]] = {}
    for a in range(len(previous.articles) - 1, -1, -1):
        if a not in taken:
            by_hash.setdefault(previous.content_hash(a), []).append(a)
    out: list[_Old | _New] = []
    for entry in entries:
        if isinstance(entry, _New):
            same = by_hash.get(entry.article.content_hash)
            if same:
                old = same.pop()
                path = entry.article.path
                moved = path if previous.article_path(old) != path else None
                out.append(_Old(old, entry.file, moved))
                continue
        out.append(entry)
    return out, True


def _moved(article: Article, path: str | None) -> Article:
    if path is None:
        return article
    return Article(**{**article.__dict__, "path": path})


# ------------------------------------------------------------------ segments


def _size_class(articles: int) -> int:
    return max(0, int(math.log(max(articles, 1) / MERGE_BASE, MERGE_FACTOR))) if articles else 0


def _plan_segments(
    entries: list[_Old | _New], previous: StoredIndex | None, retokenize: bool
) -> tuple[list[int], set[int]]:
    """Which previous segments to keep as they are, and which to copy into the new one."""
    if previous is None:
        return [], set()
    live = [0] * len(previous.segments)
    for entry in entries:
        if isinstance(entry, _Old):
            live[previous.article_location(entry.article)[0]] += 1
    used = [s for s in range(len(live)) if live[s]]
    if retokenize:
        return [], set(used)
    rewrite = {
        s for s in used if live[s] < (1 - MAX_DEAD_SHARE) * len(previous.segments[s].articles)
    }
    new = sum(isinstance(e, _New) for e in entries)
    while True:
        size = new + sum(live[s] for s in rewrite)
        classes: dict[int, list[int]] = {}
        for s in used:
            if s not in rewrite:
                classes.setdefault(_size_class(live[s]), []).append(s)
        if size:
            classes.setdefault(_size_class(size), []).append(-1)
        crowded = [members for members in classes.values() if len(members) >= MERGE_FACTOR]
        if not crowded:
            break
        rewrite.update(s for members in crowded for s in members if s >= 0)
    return [s for s in used if s not in rewrite], rewrite


def _write(
    writer: BuildWriter,
    entries: list[_Old | _New],
    file_numbers: dict[str, int],
    previous: StoredIndex | None,
    plan: tuple[list[int], set[int], bool],
    embedder: Embedder,
    say: Callable[[str], None],
    progress: bool,
    workers: int | None,
    ann_min: int | None,
) -> tuple[BuildReport, np.ndarray, dict[int, str], list[str]]:
    """Link the kept segments, write the new one; the report, view, moved paths, segments.

    ``plan``: the previous segments kept as they are, those copied into the new
    segment, and whether copies count their words again (a new tokenizer).
    """
    keep, rewrite, retokenize = plan
    segments: list[str] = []
    number: dict[int, int] = {}  # previous segment -> its number in the new build
    for s in keep:
        assert previous is not None
        name = previous.segments[s].name
        writer.link_segment(build_dir_of(writer.index_dir), name, previous.manifest.checksums)
        number[s] = len(segments)
        segments.append(name)
    view = np.zeros(len(entries), dtype=VIEW_DTYPE)
    paths: dict[int, str] = {}
    news = [i for i, e in enumerate(entries) if isinstance(e, _New)]
    copies = [
        i
        for i, e in enumerate(entries)
        if isinstance(e, _Old)
        and previous is not None
        and previous.article_location(e.article)[0] in rewrite
    ]
    reused = len(entries) - len(news)
    if news:
        say(f"splitting {len(news)} new or changed article(s) into passages, reusing {reused}")
    else:
        say(f"embedding 0 new or changed article(s), reusing {reused}")
    if news or copies:
        name = f"seg-{writer.build_id}"
        segment = SegmentWriter(writer.segment_dir(name), embedder.dimension)
        try:
            new_number = len(segments)
            local = _add_new(segment, [(i, entries[i]) for i in news], embedder, progress, workers)
            for i in copies:
                entry = entries[i]
                assert isinstance(entry, _Old) and previous is not None
                s, old_local = previous.article_location(entry.article)
                path = entry.path or previous.paths.get(entry.article)
                local[i] = segment.add_copy(previous.segments[s], old_local, path, retokenize)
            say("building the lexical indexes")
            segment.finish_words()
            if dense.choose(segment.passages, ann_min) != "exact":
                say(f"indexing {segment.passages:,} passage vectors for approximate search")
            segment.finish(None, ann_min)
        except BaseException:
            segment.abandon()
            raise
        segments.append(name)
        for i, n in local.items():
            view[i] = (new_number, n, 0)
    copied = set(copies)
    for i, entry in enumerate(entries):
        if isinstance(entry, _Old) and i not in copied:
            assert previous is not None
            s, old_local = previous.article_location(entry.article)
            view[i] = (number[s], old_local, 0)
            moved = entry.path or previous.paths.get(entry.article)
            if moved is not None:
                paths[i] = moved
    # The view's file numbers follow the manifest's list of files (the reader's order).
    view["file"] = [file_numbers[entry.file] for entry in entries]
    report = BuildReport(
        articles=len(entries),
        passages=0,
        sentences=0,
        embedded_articles=len(news),
        reused_articles=reused,
        segments=len(segments),
        merged_segments=len(rewrite),
    )
    _count(report, writer, segments, view)
    return report, view, paths, segments


def _count(report: BuildReport, writer: BuildWriter, segments: list[str], view: np.ndarray) -> None:
    """Passages and sentences of the articles in ``view`` (from the segments' tables only)."""
    passages = sentences = 0
    for s, name in enumerate(segments):
        folder = writer.segment_dir(name)
        rows = mapped(folder / "articles.npy")[np.asarray(view["article"])[view["segment"] == s]]
        per_passage = np.asarray(mapped(folder / "passages.npy")["sentences"], dtype=np.int64)
        counts = np.asarray(rows["passages"], dtype=np.int64)
        firsts = np.asarray(rows["first_passage"], dtype=np.int64)
        cumulative = np.concatenate([[0], np.cumsum(per_passage)])
        passages += int(counts.sum())
        sentences += int((cumulative[firsts + counts] - cumulative[firsts]).sum())
    report.passages, report.sentences = passages, sentences


# ------------------------------------------------------------------ splitting and embedding

_WORKER: dict[str, Any] = {}
_Split = tuple[list[PassageSpans], list[Words], Words, list[bytes]]


def _init_worker(counter: Callable[[str], int], window: int) -> None:
    _WORKER["count"] = counter
    _WORKER["window"] = window


def _split_chunk(payload: list[tuple[str, str]]) -> list[_Split]:
    """In a worker: passages, sentences and words of each (title, body)."""
    return [_split_one(title, body, _WORKER["count"], _WORKER["window"]) for title, body in payload]


def _split_one(title: str, body: str, count: Callable[[str], int], window: int) -> _Split:
    """An article's passages, their words and analyses, and the whole article's words."""
    passages = split_article(body, 0, count, window)
    return (
        [PassageSpans(p.start, p.end, p.sentences) for p in passages],
        [count_words(tokenize(p.text)) for p in passages],
        count_words(tokenize(f"{title}\n{body}")),
        [analysis_record(p.text, p.sentences) for p in passages],
    )


def _chunks(items: list[tuple[int, _New]]) -> Iterator[list[tuple[int, _New]]]:
    chunk: list[tuple[int, _New]] = []
    chars = 0
    for item in items:
        chunk.append(item)
        chars += len(item[1].article.body)
        if chars >= CHUNK_CHARS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def _splits(
    chunks: list[list[tuple[int, _New]]], embedder: Embedder, workers: int
) -> Iterator[list[_Split]]:
    """Each chunk's splits, in order: from worker processes (a few chunks ahead) or here."""
    payloads = ([(e.article.title, e.article.body) for _, e in chunk] for chunk in chunks)
    counter = getattr(embedder, "token_counter", None)
    if workers <= 1 or counter is None:
        for payload in payloads:
            yield [
                _split_one(title, body, embedder.count_tokens, embedder.window)
                for title, body in payload
            ]
        return
    context = multiprocessing.get_context("spawn")  # the parent holds model threads: no fork
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(counter(), embedder.window),
    ) as pool:
        pending: deque[Future[list[_Split]]] = deque()
        for payload in payloads:
            pending.append(pool.submit(_split_chunk, payload))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _add_new(
    segment: SegmentWriter,
    news: list[tuple[int, _New]],
    embedder: Embedder,
    progress: bool,
    workers: int | None,
) -> dict[int, int]:
    """Split, embed and add the new articles; their numbers in the segment, by entry."""
    local: dict[int, int] = {}
    if not news:
        return local
    chars = sum(len(e.article.body) for _, e in news)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if chars < POOL_MIN_CHARS:
        workers = 1
    chunks = list(_chunks(news))
    recent = _RecentVectors()
    split_bar = tqdm(total=len(news), unit="article", desc="splitting", disable=not progress)
    embed_bar = tqdm(total=0, unit="text", desc="embedding", disable=not progress)
    with split_bar, embed_bar:
        for chunk, splits in zip(chunks, _splits(chunks, embedder, workers), strict=True):
            split_bar.update(len(chunk))
            articles = [e.article for _, e in chunk]
            vectors = _embed_chunk(articles, splits, embedder, embed_bar, recent)
            for (i, entry), split, (pv, sv, windows) in zip(chunk, splits, vectors, strict=True):
                spans, words, article_words, analyses = split
                local[i] = segment.add(
                    entry.article,
                    entry.article.line,
                    spans,
                    words,
                    article_words,
                    pv,
                    sv,
                    analyses,
                    windows,
                )
            for _, entry in chunk:
                entry.article = _released(entry.article)
    return local


def _released(article: Article) -> Article:
    """The article without its body, once written: a large build need not keep every text."""
    return Article(article.path, article.title, "", content_hash=article.content_hash)


class _RecentVectors:
    """Vectors of the texts embedded last in this build, so that a text repeated from one
    chunk to another (a wire service's boilerplate sentence) is embedded once."""

    def __init__(self, size: int = RECENT_VECTORS) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, text: str) -> np.ndarray | None:
        vector = self._vectors.get(text)
        if vector is not None:
            self._vectors.move_to_end(text)
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)


def _embed_chunk(
    articles: Sequence[Article],
    splits: Sequence[_Split],
    embedder: Embedder,
    bar: tqdm,
    recent: _RecentVectors,
) -> list[tuple[np.ndarray, np.ndarray, list[bytes]]]:
    """Passage and sentence vectors of each article, and each passage's record of its
    long sentences' windows (``index/windows.py``); every distinct text embedded once."""
    per_article: list[tuple[list[str], list[str], list[tuple[list[int], list[str]]]]] = []
    for article, (spans, *_) in zip(articles, splits, strict=True):
        texts = [article.body[p.start : p.end] for p in spans]
        sentences = [t[a:b] for t, p in zip(texts, spans, strict=True) for a, b in p.sentences]
        windows = []
        for text, p in zip(texts, spans, strict=True):
            found = sentence_windows(text, p.sentences)
            windows.append(([j for j, _, _ in found], [text[a:b] for _, a, b in found]))
        per_article.append((texts, sentences, windows))
    unique = list(
        dict.fromkeys(
            t
            for texts, sents, windows in per_article
            for t in (*texts, *sents, *(w for _, ws in windows for w in ws))
        )
    )
    vectors = np.zeros((len(unique), embedder.dimension), dtype=np.float32)
    missing: list[int] = []
    for i, text in enumerate(unique):
        known = recent.get(text)
        if known is None:
            missing.append(i)
        else:
            vectors[i] = known
    # Longest first, as sentence-transformers orders one encode call: batches of
    # like-length texts waste no work on padding.
    order = sorted(missing, key=lambda i: -len(unique[i]))
    bar.total += len(order)
    bar.refresh()
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        vectors[rows] = embedder.encode([unique[i] for i in rows], batch_size=EMBED_BATCH)
        bar.update(len(rows))
    for i in order:
        recent.put(unique[i], vectors[i].copy())
    row = {text: i for i, text in enumerate(unique)}
    dim = embedder.dimension
    out: list[tuple[np.ndarray, np.ndarray, list[bytes]]] = []
    for texts, sents, windows in per_article:
        pv = vectors[[row[t] for t in texts]] if texts else np.zeros((0, dim), np.float32)
        sv = vectors[[row[t] for t in sents]] if sents else np.zeros((0, dim), np.float32)
        records = [
            windows_record(owners, vectors[[row[t] for t in ws]]) if ws else b""
            for owners, ws in windows
        ]
        out.append((pv, sv, records))
    return out


# ------------------------------------------------------------------ messages


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

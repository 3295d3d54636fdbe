"""The index on disk: one directory of immutable segments, written atomically, checked when read.

Layout of ``INDEX_DIR``::

    current -> builds/<build id>        (symlink, swapped atomically)
    builds/<build id>/manifest.json     format, model, dimension, settings, corpus files,
                                        segments, and the size and sha256 of every file
                     /view.npy          the build's articles in corpus order: for each,
                                        its segment, its number there, its corpus file
                     /paths.json        articles whose corpus path changed (a moved file)
                     /.verified         the stat of every file when last found intact
                     /seg-<id>/         a segment: articles, passages, vectors, words
                                        (``index/segments.py``)

A build writes only the segments that are new (new or changed articles) into a new
``builds/<id>`` and hard-links the previous build's segments into it unchanged,
then repoints ``current`` with ``os.replace``, which is atomic: a build killed
half-way leaves the previous index in place, and a reader never sees half an
index. An article removed or changed since is simply left out of ``view.npy``
(a tombstone); segments with many such articles, or many small segments, are
merged into a new one by the build that notices (``index/build.py``).

The manifest records the size and SHA-256 of every other file of its build, and
loading checks them (:func:`verify_build`): a truncated file, a flipped byte, a
deleted file, a missing manifest or a dangling ``current`` link is one line
naming what is wrong, and ``build --if-changed`` takes such an index for
changed and builds it again. Files whose ``stat`` is as ``.verified`` recorded
it are not hashed again (``index/checksums.py``), so loading a million passages
costs milliseconds, not a pass over gigabytes.

:class:`StoredIndex` is the loaded index: the articles and passages in corpus
order, read from the memory-mapped segments when asked for, never parsed whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, overload

import numpy as np

from index.arrays import as_float32, concat_ranges, mapped, touch_pages
from index.checksums import damage, file_sha256, read_stamp, write_stamp
from index.corpus import Article
from index.lexical import LexicalIndex
from index.passages import Passage
from index.segments import Segment

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
VIEW = "view.npy"
PATHS = "paths.json"
STAMP = ".verified"
REBUILD_HINT = "rebuild it with: python -m index build"
VIEW_DTYPE = np.dtype([("segment", "<i2"), ("article", "<i4"), ("file", "<i4")])
PAGE_IN_SECONDS = 1.0  # of a load spent touching the index's pages (the rest: a thread)
PASSAGE_CACHE = 8192  # passages kept once read (a question reads a few hundred)
ARTICLE_CACHE = 512


class IndexLoadError(RuntimeError):
    """The index cannot be used as it is; the message says why and what to do."""


class IndexDamaged(IndexLoadError):
    """The index's files are not the ones its build wrote; the message names which."""


@dataclass(frozen=True)
class Manifest:
    format_version: int
    build_id: str
    model: str
    dimension: int
    normalized: bool
    metric: str
    tokenizer: str
    passage_settings: dict[str, Any]
    files: dict[str, str]  # corpus path -> sha256
    articles: int
    passages: int
    sentences: int
    built_at: str
    build_seconds: float
    skipped: list[dict[str, Any]]
    # file of the build (relative path) -> [size in bytes, sha256]; empty: made before checksums
    checksums: dict[str, list[Any]] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)  # segment folders, in view order
    # corpus path -> [size, mtime_ns, lines read (archives)], as the build read it
    file_stats: dict[str, list[int]] = field(default_factory=dict)
    read_at_ns: int = 0  # when the build started reading the corpus
    store: str = "embedded"  # the storage backend that keeps it (index/backend.py)
    analysis: str = ""  # the passage analysis its segments store (index/analysis.py)
    embedding: str = ""  # which vectors: backend and conversion (Embedder.vectors)


def build_dir_of(index_dir: Path) -> Path:
    """The directory holding the live build: ``current``'s target, or ``index_dir`` itself."""
    current = index_dir / "current"
    if current.is_symlink() and not current.exists():
        raise IndexDamaged(
            f"index at {index_dir} is damaged: current points to {os.readlink(current)}, "
            f"which does not exist; {REBUILD_HINT}"
        )
    if current.exists():
        return current.resolve()
    if (index_dir / MANIFEST).exists():
        return index_dir  # a copied build directory works too
    if (index_dir / "builds").is_dir():
        raise IndexDamaged(
            f"index at {index_dir} is damaged: its current link is missing; {REBUILD_HINT}"
        )
    raise IndexLoadError(f"no index found at {index_dir}; build one with: python -m index build")


def read_manifest(index_dir: Path) -> Manifest:
    path = build_dir_of(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexDamaged(f"index at {index_dir} is damaged: {path} is missing; {REBUILD_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError) as err:
        raise IndexLoadError(
            f"index manifest {path} is unreadable ({err}); {REBUILD_HINT}"
        ) from err


def verify_build(index_dir: Path, manifest: Manifest | None = None, *, full: bool = False) -> None:
    """Raise :class:`IndexDamaged` unless every file of the live build is as it was written.

    Sizes are always checked; a file is hashed unless its ``stat`` matches the
    build's ``.verified`` stamp (``full``: hash every file whatever the stamp says).
    """
    manifest = manifest or read_manifest(index_dir)
    if not manifest.checksums:
        raise IndexDamaged(
            f"index at {index_dir} records no checksums (made by an older quotebot); {REBUILD_HINT}"
        )
    root = build_dir_of(index_dir)
    stamp = {} if full else read_stamp(root / STAMP)
    hashed: list[str] = []
    seen: dict[str, list[int]] = {}
    problem = damage(root, manifest.checksums, stamp, hashed, seen)
    if problem:
        raise IndexDamaged(f"index at {index_dir} is damaged: {problem}; {REBUILD_HINT}")
    if hashed:
        write_stamp(root / STAMP, root, list(manifest.checksums), seen)


def load_index(index_dir: Path) -> StoredIndex:
    """Read the current build, or raise :class:`IndexLoadError` saying what is wrong."""
    manifest = read_manifest(index_dir)
    verify_build(index_dir, manifest)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexLoadError(
            f"index at {index_dir} has format version {manifest.format_version}, "
            f"this quotebot reads version {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    root = build_dir_of(index_dir)
    try:
        segments = [Segment(root / name) for name in manifest.segments]
        view = mapped(root / VIEW)
        paths = {int(k): v for k, v in json.loads((root / PATHS).read_text("utf-8")).items()}
        stored = StoredIndex(manifest, segments, view, paths)
    except Exception as err:  # any unreadable part means the same thing to the user
        raise IndexLoadError(
            f"index at {index_dir} is corrupt or incomplete ({type(err).__name__}: {err}); "
            f"{REBUILD_HINT}"
        ) from err
    counts = (len(stored.articles), len(stored.passages), stored.sentence_count)
    expected = (manifest.articles, manifest.passages, manifest.sentences)
    dims = {s.dimension for s in segments}
    if counts != expected or (dims and dims != {manifest.dimension}):
        raise IndexLoadError(
            f"index at {index_dir} is inconsistent (articles/passages/sentences "
            f"{counts}, manifest says {expected}); {REBUILD_HINT}"
        )
    return stored


# ------------------------------------------------------------------ the loaded index


class StoredIndex:
    """A loaded build: the articles and passages in corpus order, and their search structures.

    What the ranking reads (and all it may read, so that another storage engine can
    stand in for this one: see README, "Beyond one machine"):

    - ``articles[a]`` (:class:`~index.corpus.Article`), ``passages[i]``
      (:class:`~index.passages.Passage`, ``.article`` is ``a``), their ``len``;
    - ``passage_vectors[ids]`` and ``sentence_vectors[rows]``: float32 rows; passage
      ``i``'s sentences are rows ``sentence_rows(i)``;
    - ``faiss_index.search(queries, k)``: the nearest passages, ``(scores, ids)``;
    - ``passage_bm25`` / ``article_bm25``: :class:`~index.lexical.LexicalIndex`
      (``search``, ``scores_of``, ``document_frequency``);
    - ``passages_of(a)``, ``find_passage(key, start)``, ``manifest``.
    """

    def __init__(
        self,
        manifest: Manifest,
        segments: Sequence[Segment],
        view: np.ndarray,
        paths: dict[int, str] | None = None,
    ) -> None:
        self.manifest = manifest
        self.segments = list(segments)
        self.view = view
        self.paths = paths or {}
        n_seg = len(self.segments)
        seg_of = np.asarray(view["segment"], dtype=np.int64)
        local = np.asarray(view["article"], dtype=np.int64)
        self._article_segment = seg_of
        self._article_local = local
        sizes = [(len(s.articles), len(s.passages), len(s.sentences)) for s in self.segments]
        self._article_base = _bases([a for a, _, _ in sizes])
        self._passage_base = _bases([p for _, p, _ in sizes])
        self._sentence_base = _bases([s for _, _, s in sizes])
        n_articles = len(view)
        # Each article's passages: where they start (globally) and how many.
        first = np.zeros(n_articles, dtype=np.int64)
        count = np.zeros(n_articles, dtype=np.int64)
        self._article_logical: list[np.ndarray] = []
        for s, segment in enumerate(self.segments):
            mine = np.flatnonzero(seg_of == s)
            rows = segment.articles[local[mine]] if len(mine) else segment.articles[:0]
            first[mine] = np.asarray(rows["first_passage"]) + self._passage_base[s]
            count[mine] = np.asarray(rows["passages"])
            logical = np.full(len(segment.articles), -1, dtype=np.int64)
            logical[local[mine]] = mine
            self._article_logical.append(logical)
        self.article_starts = np.zeros(n_articles + 1, dtype=np.int64)
        np.cumsum(count, out=self.article_starts[1:])
        n_passages = int(self.article_starts[-1])
        self.passage_articles = np.repeat(np.arange(n_articles, dtype=np.int64), count)
        whole = n_seg == 1 and n_articles == len(self.segments[0].articles)
        self._identity = bool(whole and np.array_equal(local, np.arange(n_articles)))
        if self._identity:
            segment = self.segments[0]
            self._passage_map: np.ndarray | None = None
            self._sentence_map: np.ndarray | None = None
            per_passage = np.asarray(segment.passages["sentences"], dtype=np.int64)
            self._passage_logical: list[np.ndarray | None] = [None]
            article_logical: list[np.ndarray | None] = [None]
            passage_where: tuple[np.ndarray, np.ndarray] | None = None
            article_where: tuple[np.ndarray, np.ndarray] | None = None
        else:
            self._passage_map = concat_ranges(first, first + count)
            p_seg = np.searchsorted(self._passage_base, self._passage_map, side="right") - 1
            passage_where = (p_seg, self._passage_map - self._passage_base[p_seg])
            s_first = np.zeros(n_passages, dtype=np.int64)
            per_passage = np.zeros(n_passages, dtype=np.int64)
            self._passage_logical = []
            for s, segment in enumerate(self.segments):
                mine = np.flatnonzero(p_seg == s)
                rows = segment.passages[self._passage_map[mine] - self._passage_base[s]]
                s_first[mine] = np.asarray(rows["first_sentence"]) + self._sentence_base[s]
                per_passage[mine] = np.asarray(rows["sentences"])
                logical = np.full(len(segment.passages), -1, dtype=np.int64)
                logical[self._passage_map[mine] - self._passage_base[s]] = mine
                self._passage_logical.append(logical)
            self._sentence_map = concat_ranges(s_first, s_first + per_passage)
            article_logical = list(self._article_logical)
            article_where = (seg_of, local)
        self.sentence_starts = np.zeros(n_passages + 1, dtype=np.int64)
        np.cumsum(per_passage, out=self.sentence_starts[1:])
        # Passages and articles are cut from the mapped text when asked for; the ones
        # asked for lately are kept (the ranking and the quotes ask for the same few).
        self.passage = lru_cache(maxsize=PASSAGE_CACHE)(self._passage)  # type: ignore[method-assign]
        self._article_cached = lru_cache(maxsize=ARTICLE_CACHE)(self._article)
        self.articles = ArticleTable(self)
        self.passages = PassageTable(self)
        dimension = manifest.dimension
        if self._identity:
            self.passage_vectors: np.ndarray | RowView = self.segments[0].passage_vectors
        else:
            self.passage_vectors = RowView(
                [s.passage_vectors for s in self.segments],
                self._passage_base,
                self._passage_map,
                dimension,
            )
        self.sentence_vectors = RowView(
            [s.sentence_vectors for s in self.segments],
            self._sentence_base,
            self._sentence_map,
            dimension,
        )
        self.passage_bm25 = LexicalIndex(
            [s.passage_words for s in self.segments],
            self._passage_logical,
            n_passages,
            passage_where,
        )
        self.article_bm25 = LexicalIndex(
            [s.article_words for s in self.segments], article_logical, n_articles, article_where
        )
        self.faiss_index = DenseSearch(self.segments, self._passage_logical, dimension)
        hashes = np.empty(n_articles, dtype="S64")
        for s, segment in enumerate(self.segments):
            mine = np.flatnonzero(seg_of == s)
            if len(mine):
                hashes[mine] = segment.articles["hash"][local[mine]]
        self._hashes = hashes
        # Passage references name an article by the start of its content hash.
        self._by_key = {digest[:10].decode("ascii"): a for a, digest in enumerate(hashes.tolist())}

    def page_in(self, budget: float = PAGE_IN_SECONDS) -> None:
        """Touch the mapped files' pages: for ``budget`` seconds now, the rest in a thread.

        Nothing is read whole at load, but a fresh process pays a page fault for each
        page it reads first (measured at a million passages: the first questions spent
        20 ms in the vector graph and 15 in sentence vectors, later ones under 1).
        """
        arrays = [a for segment in self.segments for a in segment.mapped_arrays()]
        left = touch_pages(arrays, budget)
        if left:
            # A bound method: the thread keeps this index (and FAISS's mappings) alive.
            threading.Thread(target=self._touch, args=(left,), name="page-in", daemon=True).start()

    def _touch(self, arrays: list[np.ndarray]) -> None:
        # At the lowest CPU priority: on a small machine the first questions after a
        # load must not queue behind it (Linux sets a thread's own niceness this way).
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        touch_pages(arrays, float("inf"))

    @property
    def sentence_count(self) -> int:
        return int(self.sentence_starts[-1])

    def passages_of(self, article: int) -> range:
        """The passages of article ``article``: consecutive, in reading order."""
        return range(int(self.article_starts[article]), int(self.article_starts[article + 1]))

    def sentence_rows(self, passage: int) -> slice:
        """The rows of ``sentence_vectors`` holding passage ``passage``'s sentences."""
        return slice(int(self.sentence_starts[passage]), int(self.sentence_starts[passage + 1]))

    def article_key(self, article: int) -> str:
        return self._hashes[article][:10].decode("ascii")

    def content_hash(self, article: int) -> str:
        return self._hashes[article].decode("ascii")

    def find_passage(self, key: str, start: int) -> int | None:
        """The passage starting at character ``start`` of the article whose key is ``key``."""
        article = self._by_key.get(key)
        if article is None:
            return None
        for i in self.passages_of(article):
            if self.passage_start(i) == start:
                return i
        return None

    def passage_start(self, i: int) -> int:
        segment, local = self._locate_passage(i)
        return int(segment.passages[local]["start"])

    def article_location(self, article: int) -> tuple[int, int]:
        """(segment number, article number in that segment) of article ``article``."""
        return int(self._article_segment[article]), int(self._article_local[article])

    def passage_location(self, i: int) -> tuple[int, int]:
        """(segment number, passage number in that segment) of passage ``i``."""
        if self._passage_map is None:
            return 0, i
        physical = int(self._passage_map[i])
        s = int(np.searchsorted(self._passage_base, physical, side="right")) - 1
        return s, physical - int(self._passage_base[s])

    def _locate_passage(self, i: int) -> tuple[Segment, int]:
        s, local = self.passage_location(i)
        return self.segments[s], local

    def passage(self, i: int) -> Passage:
        """Passage ``i`` (replaced by a cached version of :meth:`_passage` at load)."""
        return self._passage(i)

    def _passage(self, i: int) -> Passage:
        segment, local = self._locate_passage(i)
        row = segment.passages[local]
        first, count = int(row["first_sentence"]), int(row["sentences"])
        sentences = segment.sentences[first : first + count].tolist()
        return Passage(
            int(self.passage_articles[i]),
            int(row["start"]),
            int(row["end"]),
            segment.text(int(row["byte_start"]), int(row["byte_end"])),
            tuple((a, b) for a, b in sentences),
        )

    def passage_analysis(self, i: int) -> bytes | None:
        """Passage ``i``'s analysis as the build stored it (``index/analysis.py``), or None."""
        segment, local = self._locate_passage(i)
        return segment.passage_analysis(local)

    def passage_windows(self, i: int) -> bytes | None:
        """Passage ``i``'s long sentences in windows, as the build stored them
        (``index/windows.py``), or None (an older build)."""
        segment, local = self._locate_passage(i)
        return segment.passage_windows(local)

    def article(self, a: int, body: bool = True) -> Article:
        """Article ``a`` (``body`` False: without its body, for its title or source)."""
        if body:
            return self._article_cached(a)
        return self._article(a, False)

    def _article(self, a: int, body: bool = True) -> Article:
        s, local = self.article_location(a)
        return self.segments[s].article(local, self.paths.get(a), body)

    def article_path(self, a: int) -> str:
        if a in self.paths:
            return self.paths[a]
        s, local = self.article_location(a)
        return self.segments[s].field(local, "path")


class ArticleTable(Sequence[Article]):
    """``stored.articles``: each article read from its segment when asked for."""

    def __init__(self, stored: StoredIndex) -> None:
        self._stored = stored
        self._size = len(stored.view)

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Article: ...
    @overload
    def __getitem__(self, index: slice) -> list[Article]: ...
    def __getitem__(self, index: int | slice) -> Article | list[Article]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        return self._stored.article(_position(index, self._size))

    def __iter__(self) -> Iterator[Article]:
        for a in range(self._size):
            yield self._stored.article(a)


class PassageTable(Sequence[Passage]):
    """``stored.passages``: each passage cut from its article's text when asked for."""

    def __init__(self, stored: StoredIndex) -> None:
        self._stored = stored
        self._size = len(stored.passage_articles)

    def __len__(self) -> int:
        return self._size

    @property
    def article_ids(self) -> np.ndarray:
        """The article of every passage, as one array (``passages[i].article`` for all i)."""
        return self._stored.passage_articles

    @overload
    def __getitem__(self, index: int) -> Passage: ...
    @overload
    def __getitem__(self, index: slice) -> list[Passage]: ...
    def __getitem__(self, index: int | slice) -> Passage | list[Passage]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        return self._stored.passage(_position(index, self._size))

    def __iter__(self) -> Iterator[Passage]:
        for i in range(self._size):
            yield self._stored.passage(i)


class RowView:
    """Vector rows spread over segments, in the store's numbering, read as float32.

    Indexed like an array (an int, a slice, an array of ints); nothing is read
    until asked for, and only the rows asked for.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        bases: np.ndarray,
        mapping: np.ndarray | None,
        dimension: int,
    ) -> None:
        self._arrays = list(arrays)
        self._bases = bases
        self._mapping = mapping
        self._size = len(mapping) if mapping is not None else int(bases[-1])
        self.shape = (self._size, dimension)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows, rest = key[0], key[1:]
            return self[rows][(slice(None), *rest) if not _is_int(rows) else rest]
        if _is_int(key):
            return self._rows(np.array([_position(int(key), self._size)]))[0]
        if isinstance(key, slice):
            return self._rows(np.arange(*key.indices(self._size), dtype=np.int64))
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        ids = ids.astype(np.int64, copy=False)
        if ids.size and (ids.min() < -self._size or ids.max() >= self._size):
            raise IndexError(f"row out of range for {self._size} rows")
        return self._rows(np.where(ids < 0, ids + self._size, ids))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        physical = self._mapping[ids] if self._mapping is not None else ids
        flat = physical.reshape(-1)
        if len(self._arrays) == 1:
            out = as_float32(self._arrays[0][flat])
        else:
            out = np.empty((len(flat), self.shape[1]), dtype=np.float32)
            which = np.searchsorted(self._bases, flat, side="right") - 1
            for s in np.unique(which).tolist():
                mine = which == s
                out[mine] = as_float32(self._arrays[s][flat[mine] - self._bases[s]])
        return out.reshape((*physical.shape, self.shape[1]))


class DenseSearch:
    """Nearest passages over every segment, in the store's numbering (``stored.faiss_index``).

    ``search(queries, k)`` returns ``(scores, ids)`` like a FAISS index: one row per
    query, best first, ids -1 past the last hit. Each segment answers with its own
    dense backend (``index/dense.py``), removed passages left out; the best ``k`` of
    all segments are kept.
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        logical: Sequence[np.ndarray | None],
        dimension: int,
    ) -> None:
        self._segments = list(segments)
        self._logical = list(logical)
        self._live = [None if m is None else m >= 0 for m in self._logical]
        self.d = dimension
        self.ntotal = sum(
            len(s.passages) if m is None else int((m >= 0).sum())
            for s, m in zip(self._segments, self._logical, strict=True)
        )

    @property
    def backends(self) -> list[str]:
        return [s.dense.name for s in self._segments]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        all_scores: list[np.ndarray] = []
        all_ids: list[np.ndarray] = []
        for segment, mapping, live in zip(self._segments, self._logical, self._live, strict=True):
            if not len(segment.passages):
                continue
            scores, ids = segment.dense.search(queries, k, live)
            if mapping is not None:
                ids = np.where(ids >= 0, mapping[np.maximum(ids, 0)], -1)
            all_scores.append(scores)
            all_ids.append(ids)
        if not all_scores:
            return (
                np.full((len(queries), k), -np.inf, dtype=np.float32),
                np.full((len(queries), k), -1, dtype=np.int64),
            )
        if len(all_scores) == 1:
            return all_scores[0], all_ids[0]
        scores = np.concatenate(all_scores, axis=1)
        ids = np.concatenate(all_ids, axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _bases(sizes: Sequence[int]) -> np.ndarray:
    bases = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bases[1:])
    return bases


def _is_int(key: Any) -> bool:
    return isinstance(key, int | np.integer)


def _position(index: int, size: int) -> int:
    index = int(index)
    if index < 0:
        index += size
    if not 0 <= index < size:
        raise IndexError(f"index {index} out of range for {size}")
    return index


# ------------------------------------------------------------------ writing a build


class BuildWriter:
    """A new build, made in a hidden folder and made current in one rename.

    Segments of the previous build are hard-linked in (never written again); new
    segments are written into :meth:`segment_dir`. Nothing is visible to readers
    until :meth:`commit`; a build killed before leaves only the hidden folder,
    which the next build removes.
    """

    def __init__(self, index_dir: Path, build_id: str) -> None:
        self.index_dir = index_dir
        self.build_id = build_id
        self.builds = index_dir / "builds"
        self.builds.mkdir(parents=True, exist_ok=True)
        self.tmp = self.builds / f".tmp-{build_id}-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self._known: dict[str, list[Any]] = {}  # checksums carried over from the old build

    def link_segment(self, old_build: Path, name: str, checksums: dict[str, list[Any]]) -> None:
        """Take segment ``name`` of ``old_build`` as it is (its files hard-linked)."""
        source, target = old_build / name, self.tmp / name
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            if path.is_dir():
                (target / rel).mkdir(parents=True, exist_ok=True)
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target / rel)
            except OSError:
                shutil.copy2(path, target / rel)  # a file system without hard links
            key = f"{name}/{rel.as_posix()}"
            if key in checksums:
                self._known[key] = checksums[key]

    def segment_dir(self, name: str) -> Path:
        return self.tmp / name

    def commit(self, manifest: Manifest, view: np.ndarray, paths: dict[int, str]) -> Path:
        """Write the view and manifest, make the build current, drop older builds."""
        np.save(self.tmp / VIEW, np.asarray(view, dtype=VIEW_DTYPE), allow_pickle=False)
        (self.tmp / PATHS).write_text(
            json.dumps({str(k): v for k, v in sorted(paths.items())}, ensure_ascii=False),
            encoding="utf-8",
        )
        checksums: dict[str, list[Any]] = {}
        for path in sorted(self.tmp.rglob("*")):
            if not path.is_file() or path.name in (MANIFEST, STAMP):
                continue
            rel = path.relative_to(self.tmp).as_posix()
            known = self._known.get(rel)
            size = path.stat().st_size
            checksums[rel] = (
                known if known is not None and known[0] == size else [size, file_sha256(path)]
            )
        manifest = Manifest(**{**asdict(manifest), "checksums": checksums})
        # The manifest goes last: a directory without one is never taken for a build.
        (self.tmp / MANIFEST).write_text(
            json.dumps(asdict(manifest), ensure_ascii=False), encoding="utf-8"
        )
        _fsync_tree(self.tmp)
        final = self.builds / self.build_id
        shutil.rmtree(final, ignore_errors=True)
        os.replace(self.tmp, final)
        _fsync_dir(self.builds)
        link = self.index_dir / "current.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(Path("builds") / final.name)
        os.replace(link, self.index_dir / "current")
        _fsync_dir(self.index_dir)
        _remove_old_builds(self.builds, keep=final.name)
        # Removing the old builds' links changed the shared files' change times: the
        # stamp is taken after, so the next load trusts them without hashing.
        write_stamp(final / STAMP, final, list(checksums))
        return final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Only one build at a time writes to an index directory."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise IndexLoadError(f"another build is writing to {index_dir}") from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def index_size_bytes(index_dir: Path) -> int:
    root = build_dir_of(index_dir)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def new_build_id() -> str:
    return (
        time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        + f"-{os.getpid()}-{time.time_ns() % 10**6:06d}"
    )


def _remove_old_builds(builds: Path, keep: str) -> None:
    for child in builds.iterdir():
        if child.name != keep:
            shutil.rmtree(child, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

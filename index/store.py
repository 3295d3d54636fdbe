"""The index on disk: one directory, written atomically, checked when read.

Layout of ``INDEX_DIR``::

    current -> builds/<build id>     (symlink, swapped atomically)
    builds/<build id>/manifest.json  format, model, dimension, settings, file hashes
                     /articles.json  article metadata and bodies
                     /passages.json  passage offsets and sentence offsets
                     /passages.faiss FAISS inner-product index of passage vectors
                     /sentences.npy  sentence vectors (for highlighting and scoring)
                     /bm25-passages/ lexical index of passages (bm25s)
                     /bm25-articles/ lexical index of whole articles (bm25s)

A build writes a new ``builds/<id>`` and only then repoints ``current`` with
``os.replace``, which is atomic: a build killed half-way leaves the previous
index in place, and a reader never sees half an index.

The manifest records the size and SHA-256 of every other file of its build, and
loading checks them all before reading anything (:func:`verify_build`): a
truncated FAISS file, a flipped byte, a deleted file, a missing manifest or a
dangling ``current`` link is one line naming what is wrong, and
``build --if-changed`` takes such an index for changed and builds it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.checksums import checksums_of, damage
from index.corpus import Article
from index.lexical import LexicalIndex
from index.passages import Passage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REBUILD_HINT = "rebuild it with: python -m index build"


class IndexLoadError(RuntimeError):
    """The index cannot be used as it is; the message says why and what to do."""


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
    skipped: list[dict[str, str]]
    # file of the build (relative path) -> [size in bytes, sha256]; empty: made before checksums
    checksums: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class StoredIndex:
    """Everything a build produces, in memory."""

    manifest: Manifest
    articles: list[Article]
    passages: list[Passage]
    passage_vectors: np.ndarray
    sentence_vectors: np.ndarray
    passage_bm25: LexicalIndex
    article_bm25: LexicalIndex
    faiss_index: Any = None


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


def write_index(index_dir: Path, stored: StoredIndex) -> Path:
    """Write ``stored`` as a new build and make it current; returns the build directory."""
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    final = builds / stored.manifest.build_id
    tmp = builds / f".tmp-{stored.manifest.build_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_json(tmp / "articles.json", [_article_json(a) for a in stored.articles])
    _write_json(tmp / "passages.json", [_passage_json(p) for p in stored.passages])
    index = faiss.IndexFlatIP(stored.manifest.dimension)
    if len(stored.passage_vectors):
        index.add(stored.passage_vectors)
    faiss.write_index(index, str(tmp / "passages.faiss"))
    np.save(tmp / "sentences.npy", stored.sentence_vectors, allow_pickle=False)
    stored.passage_bm25.save(tmp / "bm25-passages")
    stored.article_bm25.save(tmp / "bm25-articles")
    # The manifest goes last: a directory without one is never taken for a build.
    manifest = replace(stored.manifest, checksums=checksums_of(tmp, skip={MANIFEST}))
    _write_json(tmp / MANIFEST, asdict(manifest))
    _fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    link = index_dir / "current.tmp"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(Path("builds") / final.name)
    os.replace(link, index_dir / "current")
    _remove_old_builds(builds, keep=final.name)
    return final


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
        articles = [_article_from(a) for a in _read_json(root / "articles.json")]
        passages = [_passage_from(p, articles) for p in _read_json(root / "passages.json")]
        faiss_index = faiss.read_index(str(root / "passages.faiss"))
        sentence_vectors = np.load(root / "sentences.npy", allow_pickle=False)
        passage_bm25 = LexicalIndex.load(root / "bm25-passages")
        article_bm25 = LexicalIndex.load(root / "bm25-articles")
    except Exception as err:  # any unreadable part means the same thing to the user
        raise IndexLoadError(
            f"index at {index_dir} is corrupt or incomplete ({type(err).__name__}: {err}); "
            f"{REBUILD_HINT}"
        ) from err
    counts = (len(articles), len(passages), faiss_index.ntotal, len(sentence_vectors))
    expected = (manifest.articles, manifest.passages, manifest.passages, manifest.sentences)
    if counts != expected or faiss_index.d != manifest.dimension:
        raise IndexLoadError(
            f"index at {index_dir} is inconsistent (articles/passages/vectors/sentences "
            f"{counts}, manifest says {expected}); {REBUILD_HINT}"
        )
    passage_vectors = (
        faiss_index.reconstruct_n(0, faiss_index.ntotal)
        if faiss_index.ntotal
        else np.zeros((0, manifest.dimension), dtype=np.float32)
    )
    return StoredIndex(
        manifest=manifest,
        articles=articles,
        passages=passages,
        passage_vectors=np.asarray(passage_vectors, dtype=np.float32),
        sentence_vectors=sentence_vectors,
        passage_bm25=passage_bm25,
        article_bm25=article_bm25,
        faiss_index=faiss_index,
    )


class IndexDamaged(IndexLoadError):
    """The index's files are not the ones its build wrote; the message names which."""


def verify_build(index_dir: Path, manifest: Manifest | None = None) -> None:
    """Raise :class:`IndexDamaged` unless every file of the live build is as it was written.

    An index of this layout is read whole at load anyway, so hashing it costs about
    as much again as reading it.
    """
    manifest = manifest or read_manifest(index_dir)
    if not manifest.checksums:
        raise IndexDamaged(
            f"index at {index_dir} records no checksums (made by an older quotebot); {REBUILD_HINT}"
        )
    problem = damage(build_dir_of(index_dir), manifest.checksums)
    if problem:
        raise IndexDamaged(f"index at {index_dir} is damaged: {problem}; {REBUILD_HINT}")


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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _article_json(article: Article) -> dict[str, Any]:
    return asdict(article)


def _article_from(data: dict[str, Any]) -> Article:
    return Article(**data)


def _passage_json(passage: Passage) -> list[Any]:
    return [passage.article, passage.start, passage.end, [list(s) for s in passage.sentences]]


def _passage_from(data: list[Any], articles: list[Article]) -> Passage:
    article, start, end, sentences = data
    # The text is not stored twice: it is cut from the article body, which is verbatim.
    text = articles[article].body[start:end]
    return Passage(article, start, end, text, tuple((a, b) for a, b in sentences))

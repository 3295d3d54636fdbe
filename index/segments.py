"""One segment of the store: articles, passages, vectors and words, written once, then read.

A build writes new or changed articles into a new segment and keeps the segments
of the previous build as they are (hard links, see ``index/store.py``), so adding
ten articles to a million-passage index writes ten articles' worth of files.
A segment is a folder::

    segment.json            counts, dimension, the dense backend and its settings
    articles.bin            UTF-8 text of every article: body, title, path, publisher,
                            date, url, extra metadata (JSON), one after the other
    articles.npy            per article: byte offsets of those fields in articles.bin,
                            which are null, its first passage and passage count,
                            its archive line, its content hash
    passages.npy            per passage: article, character and byte offsets in the
                            body, first sentence and sentence count
    sentences.npy           per sentence: character offsets within its passage
    passage-vectors.npy     float32, one row per passage (or, when the dense backend
                            holds them, e.g. HNSW, at the end of its file instead)
    sentence-vectors.npy    float16, one row per sentence, passage by passage
    passage-analysis.bin    per passage, what the ranking features need of its text
                            (``index/analysis.py``), one record after the other
    passage-analysis.npy    per passage: byte offsets of its record (start, end)
    sentence-windows.bin    per passage, its long sentences' windows and their vectors
                            (``index/windows.py``), one record after the other
    sentence-windows.npy    per passage: byte offsets of its record (start, end)
    passage-words/          BM25 postings of passages (``index/lexical.py``)
    article-words/          BM25 postings of whole articles (title and body)
    dense/                  the dense backend's own files (``index/dense.py``), if any

Everything is read memory-mapped: opening a segment parses nothing but its
JSON and term lists, and a question touches only the pages it reads.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index import dense
from index.analysis import ANALYSIS, analysis_record
from index.arrays import NpyAppender, mapped, prefetch
from index.corpus import Article
from index.lexical import Postings, PostingsWriter, Words, count_words, tokenize
from index.windows import WINDOWS

SEGMENT_META = "segment.json"
SEGMENT_FORMAT = 1
FIELDS = ("body", "title", "path", "publisher", "date", "url", "extra")
_OPTIONAL = {"publisher": 1, "date": 2, "url": 4}
ARTICLE_DTYPE = np.dtype(
    [
        ("fields", "<i8", (len(FIELDS) + 1,)),  # byte offsets of each field, then the end
        ("nulls", "u1"),  # bit set: that optional field is None
        ("first_passage", "<i8"),
        ("passages", "<i4"),
        ("line", "<i8"),  # line in its JSONL archive, 0 for a file
        ("hash", "S64"),  # content hash (sha256, hex)
    ]
)
PASSAGE_DTYPE = np.dtype(
    [
        ("article", "<i4"),  # the article's number in this segment
        ("start", "<i4"),  # character offsets in the article body
        ("end", "<i4"),
        ("byte_start", "<i8"),  # byte offsets of the same text in articles.bin
        ("byte_end", "<i8"),
        ("first_sentence", "<i8"),
        ("sentences", "<i4"),
    ]
)
SENTENCE_VECTOR_DTYPE = np.float16
_FLUSH_ROWS = 20_000


@dataclass(frozen=True)
class PassageSpans:
    """Where a passage is in its article body, and its sentences within it."""

    start: int
    end: int
    sentences: tuple[tuple[int, int], ...]


class SegmentWriter:
    """Writes a segment article by article; rows go to disk in blocks as they come."""

    def __init__(self, directory: Path, dimension: int) -> None:
        directory.mkdir(parents=True)
        self.directory = directory
        self.dimension = dimension
        self._blob = open(directory / "articles.bin", "wb")  # noqa: SIM115 (closed in finish)
        self._blob_size = 0
        self._articles = NpyAppender(directory / "articles.npy", ARTICLE_DTYPE)
        self._passages = NpyAppender(directory / "passages.npy", PASSAGE_DTYPE)
        self._sentences = NpyAppender(directory / "sentences.npy", np.int32, (2,))
        self._passage_vectors = NpyAppender(
            directory / "passage-vectors.npy", np.float32, (dimension,)
        )
        self._sentence_vectors = NpyAppender(
            directory / "sentence-vectors.npy", SENTENCE_VECTOR_DTYPE, (dimension,)
        )
        self._analyses = _RecordsWriter(directory / "passage-analysis")
        self._windows = _RecordsWriter(directory / "sentence-windows")
        self.passage_words = PostingsWriter()
        self.article_words = PostingsWriter()
        self.articles = 0
        self.passages = 0
        self.sentences = 0
        self._pending: dict[str, list[Any]] = {
            "articles": [],
            "passages": [],
            "sentences": [],
            "passage_vectors": [],
            "sentence_vectors": [],
        }
        self._pending_rows = 0

    def add(
        self,
        article: Article,
        line: int,
        passages: Sequence[PassageSpans],
        passage_words: Sequence[Words],
        article_words: Words,
        passage_vectors: np.ndarray,
        sentence_vectors: np.ndarray,
        analyses: Sequence[bytes],
        windows: Sequence[bytes],
    ) -> int:
        """Add one article with its passages; returns its number in the segment.

        ``analyses``: each passage's record of :class:`~index.analysis.PassageWords`;
        ``windows``: each passage's record of its sentence windows (``index/windows.py``).
        """
        fields = [
            article.body,
            article.title,
            article.path,
            article.publisher or "",
            article.date or "",
            article.url or "",
            json.dumps(article.extra, ensure_ascii=False) if article.extra else "",
        ]
        encoded = [field.encode("utf-8") for field in fields]
        offsets = [self._blob_size]
        for data in encoded:
            offsets.append(offsets[-1] + len(data))
        body = article.body
        ascii_body = body.isascii()
        sentence_rows: list[tuple[int, int]] = []
        for spans in passages:
            if ascii_body:
                byte_start, byte_end = spans.start, spans.end
            else:
                byte_start = len(body[: spans.start].encode("utf-8"))
                byte_end = byte_start + len(body[spans.start : spans.end].encode("utf-8"))
            self._pending["passages"].append(
                (
                    self.articles,
                    spans.start,
                    spans.end,
                    offsets[0] + byte_start,
                    offsets[0] + byte_end,
                    self.sentences + len(sentence_rows),
                    len(spans.sentences),
                )
            )
            sentence_rows.extend(spans.sentences)
        if len(passage_vectors) != len(passages) or len(sentence_vectors) != len(sentence_rows):
            raise ValueError(
                f"{article.path}: {len(passages)} passages and {len(sentence_rows)} sentences, "
                f"{len(passage_vectors)} and {len(sentence_vectors)} vectors"
            )
        if len(analyses) != len(passages) or len(windows) != len(passages):
            raise ValueError(
                f"{article.path}: {len(passages)} passages, {len(analyses)} analyses, "
                f"{len(windows)} window records"
            )
        nulls = sum(bit for name, bit in _OPTIONAL.items() if getattr(article, name) is None)
        self._pending["articles"].append(
            (offsets, nulls, self.passages, len(passages), line, article.content_hash.encode())
        )
        self._pending["sentences"].extend(sentence_rows)
        self._pending["passage_vectors"].append(passage_vectors)
        self._pending["sentence_vectors"].append(sentence_vectors)
        for words in passage_words:
            self.passage_words.add_counted(words.terms, words.counts, words.length)
        self.article_words.add_counted(
            article_words.terms, article_words.counts, article_words.length
        )
        self._blob.write(b"".join(encoded))
        self._blob_size = offsets[-1]
        self._analyses.add(analyses)
        self._windows.add(windows)
        self.passages += len(passages)
        self.sentences += len(sentence_rows)
        self._pending_rows += len(passages) + 1
        number = self.articles
        self.articles += 1
        if self._pending_rows >= _FLUSH_ROWS:
            self._flush()
        return number

    def add_copy(
        self, source: Segment, local: int, path: str | None = None, retokenize: bool = False
    ) -> int:
        """Copy article ``local`` of ``source`` with its passages, vectors and words
        (``retokenize``: its words counted again, for an index split the old way)."""
        article = source.article(local, path)
        row = source.articles[local]
        first, count = int(row["first_passage"]), int(row["passages"])
        rows = source.passages[first : first + count]
        spans = [
            PassageSpans(
                int(p["start"]),
                int(p["end"]),
                tuple(
                    (int(a), int(b))
                    for a, b in source.sentences[
                        int(p["first_sentence"]) : int(p["first_sentence"]) + int(p["sentences"])
                    ]
                ),
            )
            for p in rows
        ]
        s_from = int(rows[0]["first_sentence"]) if count else 0
        s_to = int(rows[-1]["first_sentence"]) + int(rows[-1]["sentences"]) if count else 0
        if retokenize:
            passage_words = [count_words(tokenize(article.body[p.start : p.end])) for p in spans]
            article_words = count_words(tokenize(f"{article.title}\n{article.body}"))
        else:
            passage_words = [source.passage_words_of(first + i) for i in range(count)]
            article_words = source.article_words_of(local)
        analyses = [
            source.passage_analysis(first + i)
            or analysis_record(article.body[p.start : p.end], p.sentences)
            for i, p in enumerate(spans)
        ]
        return self.add(
            article,
            int(row["line"]),
            spans,
            passage_words,
            article_words,
            np.asarray(source.passage_vectors[first : first + count]),
            np.asarray(source.sentence_vectors[s_from:s_to]),
            analyses,
            [source.passage_windows(first + i) or b"" for i in range(count)],
        )

    def _flush(self) -> None:
        pending = self._pending
        if pending["articles"]:
            block = np.zeros(len(pending["articles"]), dtype=ARTICLE_DTYPE)
            for i, (offsets, nulls, first, count, line, digest) in enumerate(pending["articles"]):
                block[i] = (offsets, nulls, first, count, line, digest)
            self._articles.append(block)
        if pending["passages"]:
            self._passages.append(np.array(pending["passages"], dtype=PASSAGE_DTYPE))
        if pending["sentences"]:
            self._sentences.append(np.array(pending["sentences"], dtype=np.int32))
        self._analyses.flush()
        self._windows.flush()
        for name, appender in (
            ("passage_vectors", self._passage_vectors),
            ("sentence_vectors", self._sentence_vectors),
        ):
            blocks = [b for b in pending[name] if len(b)]
            if blocks:
                appender.append(np.vstack(blocks))
        for rows in pending.values():
            rows.clear()
        self._pending_rows = 0

    def finish_words(self) -> None:
        """Close the row files and write the BM25 postings (step one of finishing)."""
        self._flush()
        self.abandon()
        self.passage_words.finish().save(self.directory / "passage-words")
        self.article_words.finish().save(self.directory / "article-words")
        self.passage_words = self.article_words = PostingsWriter()  # let the lists go

    def finish(self, backend: str | None = None, ann_min: int | None = None) -> dict[str, Any]:
        """Build the dense index and write ``segment.json`` (after :meth:`finish_words`);
        the segment's metadata. ``backend`` None: chosen by size (``dense.choose``)."""
        name = backend or dense.choose(self.passages, ann_min)
        folder = self.directory / "dense"
        folder.mkdir()
        kind = dense.backend(name)
        vectors_file = self.directory / "passage-vectors.npy"
        settings = kind.build(mapped(vectors_file), folder)
        if kind.holds_vectors:
            vectors_file.unlink()  # the backend's file holds them: once on disk
        meta = {
            "format": SEGMENT_FORMAT,
            "articles": self.articles,
            "passages": self.passages,
            "sentences": self.sentences,
            "dimension": self.dimension,
            "sentence_vectors": np.dtype(SENTENCE_VECTOR_DTYPE).name,
            "analysis": ANALYSIS,
            "windows": WINDOWS,
            "dense": {"backend": name, **settings},
        }
        (self.directory / SEGMENT_META).write_text(json.dumps(meta), encoding="utf-8")
        return meta

    def abandon(self) -> None:
        """Close what is open (an abandoned folder is removed by whoever made it)."""
        self._blob.close()
        self._analyses.close()
        self._windows.close()
        for appender in (
            self._articles,
            self._passages,
            self._sentences,
            self._passage_vectors,
            self._sentence_vectors,
        ):
            appender.close()


class Segment:
    """A segment read back, memory-mapped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.meta: dict[str, Any] = json.loads((directory / SEGMENT_META).read_text("utf-8"))
        if self.meta.get("format") != SEGMENT_FORMAT:
            raise ValueError(f"segment {directory.name} has format {self.meta.get('format')}")
        self.name = directory.name
        self.articles = mapped(directory / "articles.npy")
        self.passages = mapped(directory / "passages.npy")
        self.sentences = mapped(directory / "sentences.npy")
        self.sentence_vectors = mapped(directory / "sentence-vectors.npy")
        settings = dict(self.meta["dense"])
        kind = dense.backend(settings.pop("backend"))
        if kind.holds_vectors:
            self.dense = kind.load(None, directory / "dense", settings)
            self.passage_vectors = self.dense.vectors
        else:
            self.passage_vectors = mapped(directory / "passage-vectors.npy")
            self.dense = kind.load(self.passage_vectors, directory / "dense", settings)
        self.passage_words = Postings.load(directory / "passage-words")
        self.article_words = Postings.load(directory / "article-words")
        # Records of another version (an older build) are not read: analyses are then
        # worked out when met, and long sentences read whole.
        self._analyses = _Records.of(
            directory / "passage-analysis", self.meta.get("analysis") == ANALYSIS
        )
        self._windows = _Records.of(
            directory / "sentence-windows", self.meta.get("windows") == WINDOWS
        )
        prefetch(directory / "articles.bin")
        self._blob = _map_bytes(directory / "articles.bin")
        counts = (
            len(self.articles),
            len(self.passages),
            len(self.sentences),
            len(self.passage_vectors),
            len(self.sentence_vectors),
            self.passage_words.documents,
            self.article_words.documents,
        )
        m = self.meta
        expected = (
            m["articles"],
            m["passages"],
            m["sentences"],
            m["passages"],
            m["sentences"],
            m["passages"],
            m["articles"],
        )
        for records in (self._analyses, self._windows):
            if records is not None:
                counts += (len(records.offsets),)
                expected += (m["passages"],)
        if counts != expected:
            raise ValueError(
                f"segment {directory.name} holds {counts} rows, its segment.json says {expected}"
            )

    def mapped_arrays(self) -> list[np.ndarray]:
        """Everything the segment maps, the most used first (see ``arrays.touch_pages``)."""
        words = [
            getattr(postings, name)
            for postings in (self.passage_words, self.article_words)
            for name in ("lengths", "indptr", "forward_indptr", "docs", "tf", "forward_terms")
        ]
        blob = [np.frombuffer(self._blob, dtype=np.uint8)] if len(self._blob) else []
        analysis = self._analyses.mapped_arrays() if self._analyses is not None else []
        windows = self._windows.mapped_arrays() if self._windows is not None else []
        return [
            *self.dense.mapped_arrays(),
            self.passage_vectors,
            self.passages,
            self.sentences,
            self.articles,
            *words,
            *analysis,
            *windows,
            self.sentence_vectors,
            *blob,
        ]

    @property
    def dimension(self) -> int:
        return int(self.meta["dimension"])

    def text(self, start: int, end: int) -> str:
        return bytes(self._blob[start:end]).decode("utf-8")

    def article(self, local: int, path: str | None = None, body: bool = True) -> Article:
        """Article ``local`` (``body`` False: its body left empty, not read)."""
        row = self.articles[local]
        offsets = [int(x) for x in row["fields"]]
        values = [
            self.text(offsets[i], offsets[i + 1]) if i or body else "" for i in range(len(FIELDS))
        ]
        fields = dict(zip(FIELDS, values, strict=True))
        nulls = int(row["nulls"])
        return Article(
            path=path if path is not None else fields["path"],
            title=fields["title"],
            body=fields["body"],
            publisher=None if nulls & _OPTIONAL["publisher"] else fields["publisher"],
            date=None if nulls & _OPTIONAL["date"] else fields["date"],
            url=None if nulls & _OPTIONAL["url"] else fields["url"],
            extra=json.loads(fields["extra"]) if fields["extra"] else {},
            content_hash=bytes(row["hash"]).decode("ascii"),
        )

    def field(self, local: int, name: str) -> str:
        """One text field of article ``local`` (e.g. its path), without reading the body."""
        i = FIELDS.index(name)
        offsets = self.articles[local]["fields"]
        return self.text(int(offsets[i]), int(offsets[i + 1]))

    def passage_text(self, local: int) -> str:
        row = self.passages[local]
        return self.text(int(row["byte_start"]), int(row["byte_end"]))

    def passage_analysis(self, local: int) -> bytes | None:
        """Passage ``local``'s stored analysis record, None when the build stored none."""
        return self._analyses[local] if self._analyses is not None else None

    def passage_windows(self, local: int) -> bytes | None:
        """Passage ``local``'s sentence windows record, None when the build stored none."""
        return self._windows[local] if self._windows is not None else None

    def passage_words_of(self, local: int) -> Words:
        terms, counts = self.passage_words.document_terms(local)
        names = self.passage_words.terms
        return Words(
            [names[t] for t in terms.tolist()],
            counts.tolist(),
            int(self.passage_words.lengths[local]),
        )

    def article_words_of(self, local: int) -> Words:
        terms, counts = self.article_words.document_terms(local)
        names = self.article_words.terms
        return Words(
            [names[t] for t in terms.tolist()],
            counts.tolist(),
            int(self.article_words.lengths[local]),
        )


class _RecordsWriter:
    """One variable-length record per passage: ``<name>.bin`` holds them one after the
    other, ``<name>.npy`` each one's byte offsets (start, end)."""

    def __init__(self, name: Path) -> None:
        self._blob = open(name.with_suffix(".bin"), "wb")  # noqa: SIM115 (closed in close)
        self._size = 0
        self._offsets = NpyAppender(name.with_suffix(".npy"), np.int64, (2,))
        self._pending: list[tuple[int, int]] = []

    def add(self, records: Sequence[bytes]) -> None:
        for record in records:
            end = self._size + len(record)
            self._pending.append((self._size, end))
            self._size = end
        self._blob.write(b"".join(records))

    def flush(self) -> None:
        if self._pending:
            self._offsets.append(np.array(self._pending, dtype=np.int64))
            self._pending.clear()

    def close(self) -> None:
        self._blob.close()
        self._offsets.close()


@dataclass(frozen=True)
class _Records:
    """The records a :class:`_RecordsWriter` wrote, memory-mapped."""

    offsets: np.ndarray
    blob: mmap.mmap | bytes

    @classmethod
    def of(cls, name: Path, current: bool) -> _Records | None:
        """The records at ``name``; None when the build wrote none of this version."""
        if not current:
            return None
        return cls(mapped(name.with_suffix(".npy")), _map_bytes(name.with_suffix(".bin")))

    def __getitem__(self, local: int) -> bytes:
        start, end = self.offsets[local].tolist()
        return bytes(self.blob[start:end])

    def mapped_arrays(self) -> list[np.ndarray]:
        if not len(self.blob):
            return []
        return [self.offsets, np.frombuffer(self.blob, dtype=np.uint8)]


def _map_bytes(path: Path) -> mmap.mmap | bytes:
    """A file's bytes, memory-mapped (an empty file cannot be mapped: empty bytes)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

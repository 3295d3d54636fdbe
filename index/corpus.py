"""Reading the corpus: files → :class:`Article` items, one at a time.

Four formats are read: Markdown with a YAML front matter block (the corpus's
own format), plain text (first line is the title), HTML (main text pulled out
with trafilatura), and JSON Lines archives, one article a line, as newsroom
systems export them. A corpus is a folder of such files, or one file.

Reading is a stream (:class:`CorpusReader`): articles come one at a time and a
JSONL archive is read a line at a time, so a multi-gigabyte export never sits
in memory. Whatever cannot be read as an article (a file, or one line of an
archive) comes out of the same stream as a :class:`Skipped` item naming it and
saying why, so one bad file or line never costs the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from index.checksums import file_sha256

FILE_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
ARCHIVE_SUFFIXES = (".jsonl",)
SUFFIXES = FILE_SUFFIXES + ARCHIVE_SUFFIXES
MAX_FILE_BYTES = 20_000_000  # an article larger than this is not a news article
MAX_LINE_BYTES = MAX_FILE_BYTES  # the same limit for one article of an archive
TITLE_FALLBACK_CHARS = 80
JSONL_FIELDS = ("title", "text", "publisher", "date", "url", "id")

_FENCE = re.compile(r"^-{3,}[ \t]*$", re.MULTILINE)  # a front matter delimiter line


class ArticleError(ValueError):
    """A file or archive line that cannot be turned into an article; the message says why."""


@dataclass(frozen=True)
class Article:
    """One article: its verbatim body and the metadata its file gives."""

    # Relative to the corpus directory, with forward slashes; for an article of a
    # JSONL archive, "archive.jsonl#<id>" (its "id" field) or "archive.jsonl#L<line>".
    path: str
    title: str
    body: str
    publisher: str | None = None
    date: str | None = None
    url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    content_hash: str = ""  # sha256 of the file's bytes, or of the archive line's bytes
    line: int = field(default=0, compare=False, repr=False)  # its line in an archive, from 1

    @property
    def key(self) -> str:
        """A short name for the article that survives rebuilds while its content is unchanged."""
        return self.content_hash[:10]


@dataclass(frozen=True)
class Skipped:
    """A corpus file, or one line of a JSONL archive, that was not indexed, and why."""

    path: str  # the file, relative to the corpus directory
    reason: str
    line: int | None = None  # the line of a JSONL archive, counted from 1

    @property
    def where(self) -> str:
        return self.path if self.line is None else f"{self.path} line {self.line}"


@dataclass(frozen=True)
class KnownFile:
    """How the previous build read one corpus file: enough to tell it is unchanged."""

    stat: tuple[int, ...]  # see file_stat(): size, mtime, ctime, inode
    sha256: str
    lines: int = 0  # lines of an archive read (blank ones too); 0 for an article file
    # The file had last changed well before the build read it, so a later change
    # within the same tick of the file system's clock cannot hide behind its stat.
    settled: bool = False
    # For an archive: article path -> line, of the ids its lines used (a new line may
    # not repeat one); asked for only when the archive grew.
    ids: Callable[[], dict[str, int]] = dict


@dataclass(frozen=True)
class Unchanged:
    """A corpus file the previous build read, still as it was: its articles are reused.

    ``lines`` is None for the whole file; for an archive that only grew, the number of
    its first lines that are unchanged (the new lines follow as articles).
    """

    path: str
    lines: int | None = None


@dataclass(frozen=True)
class Corpus:
    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...]


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_hash(path: Path) -> str:
    """sha256 of a file, streamed (an archive can be gigabytes); "" when it cannot be read."""
    try:
        return file_sha256(path)
    except OSError:
        return ""


def corpus_files(root: Path) -> list[Path]:
    """Article files and archives under ``root``, in a stable order.

    ``root`` may also be one such file. Hidden files and folders and README files
    are left out.
    """
    if root.is_file():
        return [root]
    files = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.name.lower() not in {"readme.md", "readme.txt"}
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def file_stat(st: os.stat_result) -> dict[str, int]:
    """What tells a file changed without reading it: size, mtime, ctime (no program can
    set it back, unlike mtime) and inode (a file replaced by another)."""
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
    }


def relative_name(root: Path, path: Path) -> str:
    """The name a corpus file is known by: its path under ``root``, or its name if root is it."""
    return path.name if root.is_file() else path.relative_to(root).as_posix()


class CorpusReader:
    """The articles of a corpus folder (or single file), streamed one at a time.

    Iterating yields :class:`Article` and :class:`Skipped` items in file order (and
    line order within an archive), as they are read. Meanwhile ``bytes_read``
    grows towards ``total_bytes`` (for a progress bar), and ``file_hashes`` collects
    the sha256 of every file read, taken from the same bytes the articles came
    from, so an index can tell later whether the corpus changed; ``file_stats``
    its size, mtime and (archives) lines.

    With ``known`` (what the previous build read, by corpus path), a file whose size
    and mtime are as recorded is not read at all, nor is one whose bytes hash as
    recorded: an :class:`Unchanged` item stands for its articles. An archive that
    only grew (its recorded bytes unchanged, ending with a line break) yields
    ``Unchanged(path, lines)`` and then only its new lines.
    """

    def __init__(
        self,
        root: Path,
        files: Iterable[Path] | None = None,
        known: dict[str, KnownFile] | None = None,
    ) -> None:
        if not root.exists():
            raise FileNotFoundError(f"corpus not found: {root}")
        if root.is_file() and root.suffix.lower() not in SUFFIXES:
            raise FileNotFoundError(
                f"corpus {root} is not a folder or a {', '.join(SUFFIXES)} file"
            )
        self.root = root
        self.files = list(files) if files is not None else corpus_files(root)
        self.total_bytes = sum(_size(path) for path in self.files)
        self.bytes_read = 0
        self.file_hashes: dict[str, str] = {}
        self.file_stats: dict[str, dict[str, int]] = {}
        self.known = known or {}
        self._resume: tuple[int, int, Any, dict[str, int]] | None = None

    def __iter__(self) -> Iterator[Article | Skipped | Unchanged]:
        for path in self.files:
            rel = relative_name(self.root, path)
            done = self.bytes_read + _size(path)
            try:
                st = path.stat()
                self.file_stats[rel] = {**file_stat(st), "lines": 0}
            except OSError:
                st = None
            known = self.known.get(rel)
            if st is not None and known is not None and known.sha256:
                reused = self._unchanged(path, rel, st, known)
                if reused is not None:
                    yield reused
                    if reused.lines is None:
                        self.bytes_read = done
                        continue
            if path.suffix.lower() in ARCHIVE_SUFFIXES:
                yield from self._read_archive(path, rel)  # counts its lines as it goes
                self.bytes_read = done
            else:
                item = self._read_file(path, rel)
                self.bytes_read = done
                yield item

    def _unchanged(
        self, path: Path, rel: str, st: os.stat_result, known: KnownFile
    ) -> Unchanged | None:
        """An :class:`Unchanged` item if the file is (or begins) as ``known``; else None.

        For an archive that grew, the reader is left positioned to read its new lines.
        """
        self._resume = None
        size = known.stat[0]
        if st.st_size == size:
            if known.settled and tuple(file_stat(st).values()) == known.stat:
                digest = known.sha256  # the same stat, long settled: not read again
            else:
                digest = source_hash(path)
            if digest != known.sha256:
                return None
            self.file_hashes[rel] = digest
            self.file_stats[rel]["lines"] = known.lines
            return Unchanged(rel)
        if path.suffix.lower() not in ARCHIVE_SUFFIXES or st.st_size < size:
            return None
        whole = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                left = size
                last = b""
                while left:
                    block = handle.read(min(left, 1 << 20))
                    if not block:
                        return None
                    whole.update(block)
                    last = block[-1:]
                    left -= len(block)
        except OSError:
            return None
        if whole.hexdigest() != known.sha256 or last != b"\n":
            return None
        self._resume = (size, known.lines, whole, dict(known.ids()))
        self.bytes_read += size
        return Unchanged(rel, known.lines)

    def _read_file(self, path: Path, rel: str) -> Article | Skipped:
        size = _size(path)
        if size > MAX_FILE_BYTES:
            self.file_hashes[rel] = source_hash(path)
            return Skipped(rel, f"file too large ({size} bytes, limit {MAX_FILE_BYTES})")
        try:
            data = path.read_bytes()
        except OSError as err:
            self.file_hashes[rel] = ""
            return Skipped(rel, f"cannot read file: {err.strerror or err}")
        self.file_hashes[rel] = file_hash(data)
        try:
            return article_from_bytes(data, rel, path.suffix.lower())
        except ArticleError as err:
            return Skipped(rel, str(err))

    def _read_archive(self, path: Path, rel: str) -> Iterator[Article | Skipped]:
        resume, self._resume = self._resume, None
        offset, number, whole, seen = resume or (0, 0, hashlib.sha256(), {})
        # ``whole``: of the whole file, from the very bytes read
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                yield from self._archive_lines(handle, rel, whole, number, seen)
        except OSError as err:
            self.file_hashes[rel] = ""
            yield Skipped(rel, f"cannot read file: {err.strerror or err}")
            return
        self.file_hashes[rel] = whole.hexdigest()

    def _archive_lines(
        self,
        handle: BinaryIO,
        rel: str,
        whole: hashlib._Hash,
        number: int = 0,
        seen: dict[str, int] | None = None,
    ) -> Iterator[Article | Skipped]:
        """The items of one open JSONL archive, a line at a time (from line ``number + 1``)."""
        seen = {} if seen is None else seen  # article path -> its line, to refuse a repeated id
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            whole.update(raw)
            self.bytes_read += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # the rest of the line, in pieces
                    raw = handle.readline(MAX_LINE_BYTES)
                    whole.update(raw)
                    self.bytes_read += len(raw)
                yield Skipped(rel, f"line too long (over {MAX_LINE_BYTES} bytes)", number)
                continue
            line = raw.rstrip(b"\r\n")
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # a byte order mark some exporters write
            if not line.strip():
                continue  # a blank line holds no article and is no mistake
            try:
                article = article_from_json_line(line, rel, number)
            except ArticleError as err:
                yield Skipped(rel, str(err), number)
                continue
            first = seen.setdefault(article.path, number)
            if first != number:
                yield Skipped(rel, f"repeats the id of line {first}", number)
                continue
            yield replace(article, line=number)
        if rel in self.file_stats:
            self.file_stats[rel]["lines"] = number


def read_corpus(root: Path, files: Iterable[Path] | None = None) -> Corpus:
    """Every article under ``root`` at once; bad files and lines end up in ``skipped``.

    For small corpora and tests; a build streams with :class:`CorpusReader` instead.
    """
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for item in CorpusReader(root, files):
        if isinstance(item, Article):
            articles.append(item)
        elif isinstance(item, Skipped):
            skipped.append(item)
    return Corpus(tuple(articles), tuple(skipped))


def read_article(path: Path, rel: str | None = None) -> Article:
    """Read one article file, or raise :class:`ArticleError` saying why not."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArticleError(f"cannot read file: {err.strerror or err}") from err
    if len(data) > MAX_FILE_BYTES:
        raise ArticleError(f"file too large ({len(data)} bytes, limit {MAX_FILE_BYTES})")
    return article_from_bytes(data, rel or path.name, path.suffix.lower())


def article_from_bytes(data: bytes, rel: str, suffix: str) -> Article:
    """The article a file's bytes hold (``suffix`` says the format), or :class:`ArticleError`."""
    if b"\x00" in data:
        raise ArticleError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ArticleError(f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    text = _unix_newlines(text)
    if suffix in (".html", ".htm"):
        fields = _from_html(text)
    elif suffix in (".md", ".markdown"):
        fields = _from_markdown(text)
    else:
        fields = _from_plain_text(text)
    body = fields.pop("body").strip("\n")
    if not body.strip():
        raise ArticleError("no article text")
    title = fields.pop("title", None) or _title_from_body(body)
    return Article(
        path=rel,
        title=title,
        body=body,
        publisher=fields.pop("publisher", None),
        date=fields.pop("date", None),
        url=fields.pop("url", None),
        extra=fields,
        content_hash=file_hash(data),
    )


def article_from_json_line(line: bytes, rel: str, number: int) -> Article:
    """The article one JSONL line holds (without its line break), or :class:`ArticleError`.

    ``title`` and ``text`` are required strings; ``publisher``, ``date``, ``url`` and
    ``id`` optional; any other field is kept as extra metadata, like a front matter
    field. The text is kept verbatim but for line breaks made ``\\n`` and blank lines
    around it dropped, as for a file.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArticleError(f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArticleError(f"not JSON ({err.msg} at column {err.colno})") from err
    except RecursionError as err:
        raise ArticleError("not JSON this reader accepts (nested too deeply)") from err
    if not isinstance(record, dict):
        raise ArticleError(f"not a JSON object but {_json_type(record)}")
    for name in ("title", "text"):
        if name not in record or record[name] is None:
            raise ArticleError(f'no "{name}" field')
    for name in ("title", "text", "publisher", "date", "url"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise ArticleError(f'"{name}" must be a string, not {_json_type(value)}')
    title = record["title"].strip()
    if not title:
        raise ArticleError('empty "title"')
    body = _unix_newlines(record["text"]).strip("\n")
    if not body.strip():
        raise ArticleError('empty "text"')
    ident = record.get("id")
    if ident is not None and (
        isinstance(ident, bool) or not isinstance(ident, str | int) or not str(ident).strip()
    ):
        raise ArticleError(f'"id" must be a non-empty string or an integer, not {ident!r}'[:200])
    extra = {
        str(key): value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in record.items()
        if key not in JSONL_FIELDS and value is not None
    }
    return Article(
        path=f"{rel}#{ident}" if ident is not None else f"{rel}#L{number}",
        title=title,
        body=body,
        publisher=record.get("publisher"),
        date=record.get("date"),
        url=record.get("url"),
        extra=extra,
        content_hash=file_hash(line),
    )


def _from_markdown(text: str) -> dict[str, str]:
    head = text.lstrip()
    opening = _FENCE.match(head)
    if opening is None:
        return {"body": text}
    rest = head[opening.end() :]  # "" or starts with the fence line's line break
    closing = _FENCE.search(rest, 1) if rest else None
    if closing is None:
        raise ArticleError("malformed front matter: not closed (no '---' line after the fields)")
    try:
        metadata = yaml.safe_load(rest[1 : closing.start()])
    except yaml.YAMLError as err:
        raise ArticleError(f"malformed front matter: {_first_line(err)}") from err
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        # e.g. "date: 2020-13-45" reads as a timestamp and fails as a date
        raise ArticleError(f"malformed front matter: {type(err).__name__}: {err}"[:300]) from err
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ArticleError("malformed front matter: not a mapping of fields (name: value)")
    fields = {str(key): _as_text(value) for key, value in metadata.items() if value is not None}
    fields["body"] = rest[closing.end() :]
    return fields


def _from_plain_text(text: str) -> dict[str, str]:
    first, _, rest = text.strip("\n").partition("\n")
    if not rest.strip():
        # One line only: it is the article, not a title.
        return {"body": first}
    return {"title": first.strip(), "body": rest}


def _from_html(text: str) -> dict[str, str]:
    import trafilatura  # imported here: it is slow to import and only HTML needs it

    try:
        body = trafilatura.extract(
            text, include_comments=False, include_tables=False, favor_precision=True
        )
        meta = trafilatura.extract_metadata(text) if body else None
    except Exception as err:  # a third-party parser on untrusted input: any failure is "bad file"
        raise ArticleError(f"cannot read the HTML ({type(err).__name__})") from err
    if not body:
        raise ArticleError("no main text found in the HTML")
    fields: dict[str, str] = {"body": body}
    if meta is not None:
        for name in ("title", "date", "url"):
            value = getattr(meta, name, None)
            if value:
                fields[name] = str(value)
        publisher = getattr(meta, "sitename", None) or getattr(meta, "hostname", None)
        if publisher:
            fields["publisher"] = str(publisher)
    return fields


def _title_from_body(body: str) -> str:
    """A display title for an article whose file gives none: its opening words, verbatim."""
    first = re.split(r"\n\s*\n", body.strip(), maxsplit=1)[0].split("\n")[0].strip()
    if len(first) <= TITLE_FALLBACK_CHARS:
        return first
    cut = first[:TITLE_FALLBACK_CHARS].rsplit(" ", 1)[0].rstrip(",;:-–— ")
    return cut + "…"


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _json_type(value: object) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _as_text(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

"""Reading the corpus: one file → one :class:`Article`.

Three formats are read: Markdown with a YAML front matter block (the corpus's
own format), plain text (first line is the title) and HTML (main text pulled
out with trafilatura). A file that cannot be read as an article is reported
with its name and a reason and skipped, so one bad file never costs the rest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
MAX_FILE_BYTES = 20_000_000  # an article larger than this is not a news article
TITLE_FALLBACK_CHARS = 80

_FENCE = re.compile(r"^-{3,}[ \t]*$", re.MULTILINE)  # a front matter delimiter line


class ArticleError(ValueError):
    """A file that cannot be turned into an article; the message says why."""


@dataclass(frozen=True)
class Article:
    """One article: its verbatim body and the metadata its file gives."""

    path: str  # relative to the corpus directory, with forward slashes
    title: str
    body: str
    publisher: str | None = None
    date: str | None = None
    url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    content_hash: str = ""  # sha256 of the file's bytes

    @property
    def key(self) -> str:
        """A short name for the article that survives rebuilds while the file is unchanged."""
        return self.content_hash[:10]


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Corpus:
    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...]


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corpus_files(root: Path) -> list[Path]:
    """Article files under ``root``, in a stable order; hidden files and folders are ignored."""
    files = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.name.lower() not in {"readme.md", "readme.txt"}
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def read_corpus(root: Path, files: Iterable[Path] | None = None) -> Corpus:
    """Read every article file under ``root``; bad files end up in ``skipped``."""
    if not root.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {root}")
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path in files if files is not None else corpus_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            articles.append(read_article(path, rel))
        except ArticleError as err:
            skipped.append(Skipped(rel, str(err)))
    return Corpus(tuple(articles), tuple(skipped))


def read_article(path: Path, rel: str | None = None) -> Article:
    """Read one file as an article, or raise :class:`ArticleError` saying why not."""
    rel = rel or path.name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArticleError(f"cannot read file: {err.strerror or err}") from err
    if len(data) > MAX_FILE_BYTES:
        raise ArticleError(f"file too large ({len(data)} bytes, limit {MAX_FILE_BYTES})")
    if b"\x00" in data[:8192]:
        raise ArticleError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ArticleError(f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    suffix = path.suffix.lower()
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

    body = trafilatura.extract(
        text, include_comments=False, include_tables=False, favor_precision=True
    )
    if not body:
        raise ArticleError("no main text found in the HTML")
    fields: dict[str, str] = {"body": body}
    meta = trafilatura.extract_metadata(text)
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


def _as_text(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

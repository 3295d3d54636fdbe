"""Reading the corpus: front matter, JSONL archives line by line, mixed folders, streaming."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from index import corpus as corpus_module
from index.corpus import Article, CorpusReader, Skipped, read_article, read_corpus
from tests.conftest import write_article

STORY = "The harbour reopened on Monday after the storm damaged three piers."


def _jsonl(path: Path, *lines: object, newline: str = "\n") -> Path:
    """An archive: dicts become JSON lines, strings are written as they are."""
    text = newline.join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((text + newline).encode("utf-8"))
    return path


def test_front_matter_that_never_closes_is_reported_not_indexed(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "open.md").write_text(f"---\ntitle: Harbour\npublisher: Post\n\n{STORY}\n")
    (corpus / "list.md").write_text(f"---\n- just\n- a list\n---\n\n{STORY}\n")
    (corpus / "empty-fields.md").write_text(f"---\n---\n\n{STORY}\n")
    (corpus / "rule.md").write_text(f"----\ntitle: Four dashes\n----\n{STORY}\n")
    (corpus / "no-front.md").write_text(f"{STORY}\n\n---\n\nAfter a horizontal rule.\n")
    found = read_corpus(corpus)
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons == {
        "open.md": "malformed front matter: not closed (no '---' line after the fields)",
        "list.md": "malformed front matter: not a mapping of fields (name: value)",
    }
    articles = {a.path: a for a in found.articles}
    assert articles["empty-fields.md"].body == STORY
    assert articles["empty-fields.md"].title == STORY  # no title: its opening words
    assert articles["rule.md"].title == "Four dashes"
    assert articles["no-front.md"].body == f"{STORY}\n\n---\n\nAfter a horizontal rule."


def test_markdown_with_bom_and_crlf_reads_like_plain_markdown(tmp_path):
    plain = write_article(tmp_path / "a", "plain.md", STORY, title="Harbour", date="2025-03-01")
    crlf = tmp_path / "b" / "crlf.md"
    crlf.parent.mkdir()
    crlf.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    one, other = read_article(plain), read_article(crlf)
    assert (one.title, one.date, one.body) == (other.title, other.date, other.body)
    assert one.body == STORY


def test_jsonl_lines_are_articles_and_bad_lines_are_reported_by_number(tmp_path):
    archive = _jsonl(
        tmp_path / "export.jsonl",
        {
            "title": "Harbour reopens",
            "text": STORY,
            "publisher": "Avery Post",
            "date": "2025-03-01",
        },
        "{not json",
        {"title": 7, "text": STORY},
        {"text": STORY},
        {"title": "Blank", "text": " \n "},
        ["a", "list"],
        "",
        {"id": "wire-7", "title": "Ferries", "text": "Line one.\r\n\r\nLine two.", "desk": "city"},
        {"id": "wire-7", "title": "Again", "text": STORY},
        {"title": "Tags", "text": STORY, "tags": ["port", "storm"], "words": 12, "note": None},
        {"title": "Dated", "text": STORY, "date": 20250301},
    )
    items = list(CorpusReader(archive))
    skipped = [(s.line, s.reason) for s in items if isinstance(s, Skipped)]
    assert skipped == [
        (2, "not JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, '"title" must be a string, not a number'),
        (4, 'no "title" field'),
        (5, 'empty "text"'),
        (6, "not a JSON object but a list"),
        (9, "repeats the id of line 8"),
        (11, '"date" must be a string, not a number'),
    ]
    assert all(s.path == "export.jsonl" for s in items if isinstance(s, Skipped))
    articles = [a for a in items if isinstance(a, Article)]
    assert [a.path for a in articles] == [
        "export.jsonl#L1",
        "export.jsonl#wire-7",
        "export.jsonl#L10",
    ]
    first, wire, tags = articles
    assert (first.title, first.body, first.publisher, first.date) == (
        "Harbour reopens",
        STORY,
        "Avery Post",
        "2025-03-01",
    )
    assert wire.body == "Line one.\n\nLine two."
    assert wire.extra == {"desk": "city"}
    assert tags.extra == {"tags": '["port", "storm"]', "words": "12"}
    # Each line has its own content hash: a changed line changes only its own article.
    lines = archive.read_bytes().split(b"\n")
    assert first.content_hash == corpus_module.file_hash(lines[0])
    assert len({a.content_hash for a in articles}) == 3


def test_jsonl_with_bom_crlf_and_undecodable_line(tmp_path):
    archive = tmp_path / "export.jsonl"
    good = json.dumps({"title": "Café", "text": STORY}, ensure_ascii=False).encode()
    archive.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n" + b'{"title": "x", "text": "\xff"}\r\n')
    items = list(CorpusReader(archive))
    assert isinstance(items[0], Article) and items[0].title == "Café"
    assert items[0].body == STORY
    assert isinstance(items[1], Skipped) and items[1].line == 2
    assert items[1].reason.startswith("not UTF-8 text")


def test_an_over_long_line_is_skipped_and_the_next_one_read(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "MAX_LINE_BYTES", 1000)
    archive = _jsonl(
        tmp_path / "a.jsonl",
        {"title": "Long", "text": "word " * 5000},
        {"title": "Short", "text": STORY},
    )
    items = list(CorpusReader(archive))
    assert [type(i).__name__ for i in items] == ["Skipped", "Article"]
    assert items[0].where == "a.jsonl line 1"
    assert items[0].reason == "line too long (over 1000 bytes)"
    assert items[1].path == "a.jsonl#L2"


def test_a_mixed_folder_reads_files_and_archives_in_order(tmp_path):
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.md", STORY, title="Markdown", publisher="Post")
    (corpus / "b.txt").write_text("Plain title\n\nA plain text article body.\n")
    _jsonl(corpus / "desk" / "c.jsonl", {"title": "From archive", "text": STORY}, "oops")
    (corpus / ".hidden.jsonl").write_text("ignored")
    (corpus / "notes.csv").write_text("ignored")
    reader = CorpusReader(corpus)
    items = list(reader)
    assert [i.path for i in items] == ["a.md", "b.txt", "desk/c.jsonl#L1", "desk/c.jsonl"]
    assert items[-1] == Skipped("desk/c.jsonl", "not JSON (Expecting value at column 1)", 2)
    assert set(reader.file_hashes) == {"a.md", "b.txt", "desk/c.jsonl"}
    assert reader.file_hashes["desk/c.jsonl"] == corpus_module.source_hash(
        corpus / "desk" / "c.jsonl"
    )
    assert reader.bytes_read == reader.total_bytes


def test_an_archive_is_streamed_not_loaded(tmp_path):
    """A 2 GB export must work: reading holds one line at a time, whatever the file's size."""
    archive = tmp_path / "big.jsonl"
    line = json.dumps({"title": "T", "text": "x" * 2000}) + "\n"
    with open(archive, "w") as out:
        for _ in range(4000):  # 8 MB
            out.write(line)
    reader = CorpusReader(archive)
    items = iter(reader)
    first = next(items)
    assert first.path == "big.jsonl#L1"
    assert reader.bytes_read < reader.total_bytes / 100  # the first article came before the rest
    tracemalloc.start()
    count = 1 + sum(1 for _ in items)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 4000
    assert peak < 1_000_000, f"reading an 8 MB archive peaked at {peak} bytes"


def test_corpus_that_is_neither_folder_nor_article_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus not found"):
        CorpusReader(tmp_path / "missing")
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    with pytest.raises(FileNotFoundError, match="not a folder or a"):
        CorpusReader(other)

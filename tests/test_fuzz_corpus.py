"""Fuzzing corpus input with hypothesis: files and archive lines of every shape.

Whatever a file or a JSONL line holds (binary, too large, any encoding, a BOM,
CRLF, broken front matter, JSON of any shape), reading never crashes; every
file or line that is not an article gets exactly one one-line reason naming it;
and a good one is read verbatim. Example counts are bounded, and each test
prints how many examples it tried.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pysbd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index import corpus as corpus_module
from index.corpus import Article, CorpusReader, Skipped
from index.passages import _pysbd_spans, split_article

SMALL_LIMIT = 4096  # MAX_FILE_BYTES for these tests, so "too large" is cheap to make


def fuzz(examples: int) -> Callable:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def report(capsys, what: str, tried: int) -> None:
    with capsys.disabled():
        print(f"\n[fuzz] {what}: {tried} examples tried")


def _unix(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _assert_one_clear_reason(item: Skipped) -> None:
    assert item.reason.strip() == item.reason and item.reason
    assert "\n" not in item.reason and len(item.reason) < 400, item.reason


# Text without surrogates (which no file can hold) and without NUL (which makes a file binary).
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
any_text = st.text(chars, max_size=300)
line_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60)
newline = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def encoded_text(draw) -> bytes:
    text = draw(any_text)
    text = text.replace("\n", draw(newline))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]))
    return text.encode(encoding, errors="replace")


@st.composite
def broken_front_matter(draw) -> bytes:
    fields = draw(any_text)  # usually not YAML, or not a mapping
    body = draw(any_text)
    fence = draw(st.sampled_from(["---", "----", "--- ", "- - -", "---x"]))
    closing = draw(st.sampled_from(["---", "", "...", "--"]))
    return f"{fence}\n{fields}\n{closing}\n{body}".replace("\n", draw(newline)).encode()


files = st.one_of(
    st.binary(max_size=600),  # binary, and bytes that are not UTF-8
    st.binary(min_size=SMALL_LIMIT + 1, max_size=SMALL_LIMIT + 200),  # too large
    encoded_text(),  # mixed encodings, BOMs, CRLF
    broken_front_matter(),
    st.builds(lambda t: ("\ufeff" + t).encode(), any_text),
)


def test_any_file_is_read_or_skipped_with_one_reason(monkeypatch, capsys):
    monkeypatch.setattr(corpus_module, "MAX_FILE_BYTES", SMALL_LIMIT)
    tried = 0

    @fuzz(400)
    @given(data=files, suffix=st.sampled_from([".md", ".markdown", ".txt", ".html"]))
    def check(data: bytes, suffix: str) -> None:
        nonlocal tried
        tried += 1
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / f"article{suffix}").write_bytes(data)
            items = list(CorpusReader(Path(folder)))
        assert len(items) == 1
        item = items[0]
        assert item.path == f"article{suffix}"
        if isinstance(item, Skipped):
            _assert_one_clear_reason(item)
            return
        assert item.body.strip() and item.title.strip()
        if suffix != ".html":  # HTML is extracted; everything else is kept verbatim
            text = _unix(data.decode("utf-8-sig"))
            assert item.body in text

    check()
    report(capsys, "corpus files (binary, too large, encodings, BOM, CRLF, front matter)", tried)


@st.composite
def markdown_article(draw) -> tuple[bytes, dict[str, str], str]:
    fields = draw(
        st.dictionaries(
            st.sampled_from(["title", "publisher", "date", "url", "section", "byline"]),
            line_text.filter(lambda v: v.strip()),
            max_size=5,
        )
    )
    body = draw(any_text.filter(lambda b: b.strip()))
    front = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False) if fields else ""
    text = f"---\n{front}---\n{body}".replace("\n", draw(newline))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + text).encode(), fields, body


def test_good_markdown_is_read_verbatim(capsys):
    tried = 0

    @fuzz(300)
    @given(case=markdown_article())
    def check(case: tuple[bytes, dict[str, str], str]) -> None:
        nonlocal tried
        tried += 1
        data, fields, body = case
        article = corpus_module.article_from_bytes(data, "a.md", ".md")
        assert article.body == _unix(body).strip("\n")
        given_title = fields.get("title")
        assert article.title == (given_title or corpus_module._title_from_body(article.body))
        assert article.publisher == fields.get("publisher")
        assert article.url == fields.get("url")
        extra = {k: v for k, v in fields.items() if k in ("section", "byline")}
        assert article.extra == extra

    check()
    report(capsys, "well-formed Markdown articles", tried)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.none() | st.sampled_from(["a", "b", "7", 7, "wire-1"])


@st.composite
def good_record(draw) -> dict:
    record = {
        "title": draw(any_text.filter(lambda t: t.strip())),
        "text": draw(any_text.filter(lambda t: t.strip())),
    }
    for name in ("publisher", "date", "url"):
        value = draw(st.none() | line_text | st.just("absent"))
        if value != "absent":
            record[name] = value
    ident = draw(ids)
    if ident is not None:
        record["id"] = ident
    record.update(draw(st.dictionaries(st.sampled_from(["desk", "tags", "n"]), json_values)))
    return record


archive_lines = st.one_of(
    good_record().map(lambda r: ("good", r)),
    json_values.map(lambda v: ("json", v)),  # every other shape of JSON
    st.fixed_dictionaries(
        {"title": json_values, "text": json_values}, optional={"publisher": json_values}
    ).map(lambda v: ("json", v)),  # the right keys with values of any type
    st.binary(max_size=80).map(lambda b: ("raw", b.replace(b"\n", b""))),
    st.sampled_from(["[" * 100_000 + "]" * 100_000, '{"title": "x", "text": "y"', ""]).map(
        lambda s: ("raw", s.encode())
    ),
)


def test_every_archive_line_is_an_article_or_one_reason(capsys):
    tried = lines = 0

    @fuzz(150)
    @given(
        entries=st.lists(archive_lines, min_size=1, max_size=12),
        eol=st.sampled_from([b"\n", b"\r\n"]),
        bom=st.booleans(),
        final_eol=st.booleans(),
    )
    def check(entries: list, eol: bytes, bom: bool, final_eol: bool) -> None:
        nonlocal tried, lines
        tried += 1
        lines += len(entries)
        encoded = [
            json.dumps(v, ensure_ascii=False).encode() if kind != "raw" else v
            for kind, v in entries
        ]
        data = (b"\xef\xbb\xbf" if bom else b"") + eol.join(encoded) + (eol if final_eol else b"")
        with tempfile.TemporaryDirectory() as folder:
            archive = Path(folder) / "export.jsonl"
            archive.write_bytes(data)
            reader = CorpusReader(archive)
            items = list(reader)
            assert reader.file_hashes == {"export.jsonl": corpus_module.source_hash(archive)}
        # Each line that is not blank gives exactly one item, in line order.
        expected = [
            (number, kind, value)
            for number, ((kind, value), raw) in enumerate(zip(entries, encoded, strict=True), 1)
            if _as_read(raw, number, bom).strip()
        ]
        assert len(items) == len(expected)
        seen_ids: set[str] = set()
        for item, (number, kind, value) in zip(items, expected, strict=True):
            if isinstance(item, Skipped):
                assert (item.path, item.line) == ("export.jsonl", number)
                _assert_one_clear_reason(item)
            if kind != "good":
                continue
            ident = None if value.get("id") is None else str(value["id"])
            if ident in seen_ids:
                assert isinstance(item, Skipped) and "repeats the id" in item.reason
                continue
            if ident is not None:
                seen_ids.add(ident)
            assert isinstance(item, Article), item
            _assert_verbatim(item, value, number)

    check()
    report(capsys, f"JSONL archives ({lines} lines)", tried)


def _as_read(raw: bytes, number: int, bom: bool) -> bytes:
    """A line as the reader sees it: no line break, and no byte order mark on line 1."""
    line = raw.rstrip(b"\r\n")
    return line.removeprefix(b"\xef\xbb\xbf") if number == 1 and not bom else line


def _assert_verbatim(article: Article, record: dict, number: int) -> None:
    ident = record.get("id")
    assert article.path == (
        f"export.jsonl#{ident}" if ident is not None else f"export.jsonl#L{number}"
    )
    assert article.title == record["title"].strip()
    assert article.body == _unix(record["text"]).strip("\n")
    for name in ("publisher", "date", "url"):
        assert getattr(article, name) == record.get(name)
    extra = {
        k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in record.items()
        if k not in corpus_module.JSONL_FIELDS and v is not None
    }
    assert article.extra == extra


sentence_like = st.lists(
    st.sampled_from(
        [
            "The",
            "council",
            "met",
            "Mr.",
            "Smith",
            "U.S.",
            "said",
            "1.5",
            "million",
            "e.g.",
            "(the",
            "port)",
            '"We',
            'agree."',
            "No.",
            "5",
            "a.m.",
            "—",
            "Dr.",
            "...",
            "?",
            "!",
            ".",
            "\n",
            "\n\n",
            "  ",
            "Yes.",
            "Yes.",
            "It",
            "is.",
            "•",
            "1.",
            "St.",
            "Jan.",
        ]
    ),
    max_size=60,
).map(" ".join)


def test_faster_sentence_offsets_match_pysbd(capsys):
    """index.passages finds pysbd's sentences in the text itself; the offsets must not change."""
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    tried = 0

    @fuzz(300)
    @given(text=sentence_like | any_text)
    def check(text: str) -> None:
        nonlocal tried
        tried += 1
        assert _pysbd_spans(text) == [(s.start, s.end) for s in segmenter.segment(text)]
        for passage in split_article(text, 0, lambda t: len(t.split()), max_tokens=20):
            assert text[passage.start : passage.end] == passage.text

    check()
    report(capsys, "texts split into sentences", tried)


def test_a_file_over_the_real_limit_is_skipped_unread(tmp_path):
    big = tmp_path / "huge.md"
    with open(big, "wb") as out:
        out.truncate(corpus_module.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    (item,) = list(CorpusReader(tmp_path))
    assert isinstance(item, Skipped)
    assert item.reason == (
        f"file too large ({corpus_module.MAX_FILE_BYTES + 1} bytes, "
        f"limit {corpus_module.MAX_FILE_BYTES})"
    )


@pytest.mark.parametrize("line", [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 50_000])
def test_deeply_nested_json_is_a_bad_line_not_a_crash(tmp_path, line):
    (tmp_path / "deep.jsonl").write_bytes(line + b"\n")
    (item,) = list(CorpusReader(tmp_path))
    assert isinstance(item, Skipped) and item.line == 1
    _assert_one_clear_reason(item)

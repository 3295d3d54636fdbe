"""Building the index for real: skipped files, merged sources, atomic and incremental builds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index import IndexLoadError, QuoteIndex
from index.build import EmptyCorpusError, StrictBuildError, build_index, is_up_to_date
from index.store import load_index
from tests.conftest import CORPUS, MODEL, ROOT, run_index, write_article

WIRE = (
    "Officials said the new desalination plant in Port Avery will supply 40,000 homes "
    "with drinking water from next spring, after two years of construction delays."
)


def _build(corpus: Path, index_dir: Path, embedder, **kw):
    return build_index(corpus, index_dir, MODEL, embedder=embedder, progress=False, **kw)


def test_malformed_files_are_skipped_by_name_and_the_rest_indexed(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_article(corpus, "good.md", WIRE, title="Water plant", publisher="Avery Post")
    (corpus / "empty.md").write_text("", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 title\nbody text here".encode("latin-1"))
    (corpus / "badyaml.md").write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    (corpus / "plain.txt").write_text(
        "Plain title\n\nA plain text article body.\n", encoding="utf-8"
    )
    (corpus / "page.html").write_text(
        "<html><head><title>Harbour news</title></head><body><nav>Home | About</nav>"
        "<article><h1>Harbour news</h1><p>The harbour reopened on Monday after the storm "
        "damaged three piers and the ferry service resumed with a reduced timetable.</p>"
        "<p>Repairs to the remaining pier will take another month, the port authority said.</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    report = _build(corpus, tmp_path / "index", embedder)
    skipped = {s.path: s.reason for s in report.skipped}
    assert set(skipped) == {"empty.md", "binary.txt", "latin1.txt", "badyaml.md"}
    assert "no article text" in skipped["empty.md"]
    assert "binary" in skipped["binary.txt"]
    assert "UTF-8" in skipped["latin1.txt"]
    assert "front matter" in skipped["badyaml.md"]
    assert report.articles == 3
    stored = load_index(tmp_path / "index")
    titles = {a.path: a.title for a in stored.articles}
    assert titles["plain.txt"] == "Plain title"
    assert "harbour reopened" in next(a.body for a in stored.articles if a.path == "page.html")
    with pytest.raises(StrictBuildError, match=r"empty\.md"):
        _build(corpus, tmp_path / "index2", embedder, strict=True)


def test_identical_passages_merge_and_disagreeing_figures_stay_apart(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_article(
        corpus, "a.md", WIRE, title="Plant opens", publisher="Avery Post", date="2025-03-01"
    )
    write_article(
        corpus,
        "b.md",
        WIRE,
        title="Water for Port Avery",
        publisher="Coast Daily",
        date="2025-03-02",
    )
    write_article(
        corpus,
        "c.md",
        WIRE.replace("40,000", "25,000"),
        title="Plant doubts",
        publisher="Harbour Herald",
        date="2025-03-03",
    )
    _build(corpus, tmp_path / "index", embedder)
    index = QuoteIndex(tmp_path / "index", MODEL, embedder=embedder)
    answer = index.answer("How many homes will the desalination plant supply?", k=3)
    assert answer.found
    by_figure = {("40,000" in q.text): q for q in answer.quotes}
    assert set(by_figure) == {True, False}, [q.text for q in answer.quotes]
    merged = by_figure[True]
    assert sorted(s.publisher for s in merged.sources) == ["Avery Post", "Coast Daily"]
    assert [s.publisher for s in by_figure[False].sources] == ["Harbour Herald"]


def test_rebuild_embeds_only_new_or_changed_articles(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    for path in CORPUS.glob("*.md"):
        (corpus / path.name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / path.name).write_bytes(path.read_bytes())
    index_dir = tmp_path / "index"
    first = _build(corpus, index_dir, embedder)
    assert (first.embedded_articles, first.reused_articles) == (5, 0)
    before = load_index(index_dir)

    again = _build(corpus, index_dir, embedder)
    assert (again.embedded_articles, again.reused_articles) == (0, 5)

    changed = corpus / "mek-iran-stop-executions.md"
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\nA new closing paragraph about the harbour.\n",
        encoding="utf-8",
    )
    write_article(corpus, "new.md", WIRE, title="Plant opens", publisher="Avery Post")
    third = _build(corpus, index_dir, embedder)
    assert (third.embedded_articles, third.reused_articles) == (2, 4)

    after = load_index(index_dir)
    # Unchanged articles keep exactly the vectors they had.
    old_rows = {
        (before.articles[p.article].path, p.start): i for i, p in enumerate(before.passages)
    }
    for i, p in enumerate(after.passages):
        key = (after.articles[p.article].path, p.start)
        if key[0] in {"new.md", changed.name}:
            continue
        assert np.array_equal(after.passage_vectors[i], before.passage_vectors[old_rows[key]])
    index = QuoteIndex(index_dir, MODEL, embedder=embedder)
    assert (
        "40,000"
        in index.answer("How many homes will the desalination plant supply?").quotes[0].text
    )


def test_a_build_killed_half_way_leaves_the_old_index_working(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.md", WIRE, title="Plant opens", publisher="Avery Post")
    index_dir = tmp_path / "index"
    _build(corpus, index_dir, embedder)
    old_id = load_index(index_dir).manifest.build_id

    # Enough new text that embedding takes a few seconds, then kill the build mid-way.
    paragraphs = [p for p in (CORPUS / "mek-iran-executions-continue.md").read_text().split("\n\n")]
    for n in range(120):
        body = "\n\n".join(f"Report {n}, item {i}: {p}" for i, p in enumerate(paragraphs[3:]))
        write_article(corpus, f"bulk-{n:03d}.md", body, title=f"Bulk {n}")
    env = {**os.environ, "QUOTEBOT_MODEL": MODEL}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "index",
            "build",
            "--corpus",
            str(corpus),
            "--index",
            str(index_dir),
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "embedding" in line or not line:
            break
    time.sleep(1.0)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    stored = load_index(index_dir)
    assert stored.manifest.build_id == old_id
    index = QuoteIndex(index_dir, MODEL, embedder=embedder)
    assert index.answer("How many homes will the desalination plant supply?").found
    # The next build cleans up after the killed one and succeeds.
    for bulk in corpus.glob("bulk-*.md"):
        bulk.unlink()
    report = _build(corpus, index_dir, embedder)
    assert (report.articles, report.reused_articles) == (1, 1)
    assert [p.name for p in (index_dir / "builds").iterdir()] == [report.build_dir.name]


def test_index_built_with_another_model_is_refused_with_rebuild_advice(seed_index_dir, embedder):
    with pytest.raises(IndexLoadError, match="rebuild"):
        QuoteIndex(seed_index_dir, "sentence-transformers/all-mpnet-base-v2", embedder=embedder)


def test_other_dimension_or_format_version_is_refused(tmp_path, seed_index_dir, embedder):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(seed_index_dir / "current", copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "dimension": 768}))
    with pytest.raises(IndexLoadError, match="rebuild"):
        QuoteIndex(copy, MODEL, embedder=embedder)
    manifest_path.write_text(json.dumps({**manifest, "format_version": 999}))
    with pytest.raises(IndexLoadError, match=r"format version 999.*rebuild"):
        QuoteIndex(copy, MODEL, embedder=embedder)


def test_index_whose_words_were_split_another_way_is_rebuilt(tmp_path, embedder):
    """An index from before a tokenizer change: refused with advice, and --if-changed rebuilds."""
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    write_article(
        corpus, "a.md", "Céloron led 200 men down the Ohio in 1749.", title="Céloron's expedition"
    )
    _build(corpus, index_dir, embedder)
    assert is_up_to_date(corpus, index_dir, MODEL)
    manifest_path = index_dir / "current" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    old_tokenizer = "words-sklearn-stop-snowball-v1"
    manifest_path.write_text(json.dumps({**manifest, "tokenizer": old_tokenizer}))
    assert not is_up_to_date(corpus, index_dir, MODEL)
    with pytest.raises(IndexLoadError, match=r"splits words.*rebuild"):
        QuoteIndex(index_dir, MODEL, embedder=embedder)
    report = _build(corpus, index_dir, embedder)
    assert report.reused_articles == 1  # the vectors still hold: only the words are redone
    answer = QuoteIndex(index_dir, MODEL, embedder=embedder).answer("Who was Celoron?")
    assert answer.found and "Céloron" in answer.quotes[0].text


def test_passage_analysis_is_stored_and_an_index_without_it_is_upgraded(
    tmp_path, embedder, monkeypatch
):
    """Each passage's analysis is stored at build, equal to working it out from the text;
    an index from before (or with another kind of analysis) answers the same, working it
    out when met, and ``--if-changed`` upgrades it by copying, embedding nothing."""
    import index.build
    import index.segments
    from index.analysis import PassageWords, passage_words

    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    for path in CORPUS.glob("*.md"):
        (corpus / path.name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / path.name).write_bytes(path.read_bytes())
    question = "how many votes did the 63rd resolution get"
    with monkeypatch.context() as patch:
        for module in (index.build, index.segments):
            patch.setattr(module, "ANALYSIS", "passage-words-v0")
        _build(corpus, index_dir, embedder)
    old = load_index(index_dir)
    assert all(old.passage_analysis(i) is None for i in range(len(old.passages)))
    before = QuoteIndex(index_dir, MODEL, embedder=embedder).answer(question)
    assert not is_up_to_date(corpus, index_dir, MODEL)

    report = _build(corpus, index_dir, embedder)
    assert (report.embedded_articles, report.reused_articles) == (0, 5)
    assert is_up_to_date(corpus, index_dir, MODEL)
    stored = load_index(index_dir)
    for i, passage in enumerate(stored.passages):
        record = stored.passage_analysis(i)
        assert record is not None
        assert PassageWords.decode(record) == passage_words(passage.text, passage.sentences)
    after = QuoteIndex(index_dir, MODEL, embedder=embedder).answer(question)
    assert "85 votes" in after.quotes[0].text
    assert [(q.text, round(q.score, 6)) for q in after.quotes] == [
        (q.text, round(q.score, 6)) for q in before.quotes
    ]


def test_missing_or_corrupt_index_is_a_clear_error(tmp_path, seed_index_dir, embedder):
    import shutil

    with pytest.raises(IndexLoadError, match="no index found"):
        QuoteIndex(tmp_path / "nowhere", MODEL, embedder=embedder)
    copy = tmp_path / "copy"
    shutil.copytree(seed_index_dir / "current", copy)
    (vectors,) = copy.glob("seg-*/passage-vectors.npy")
    vectors.write_bytes(vectors.read_bytes()[:100])
    with pytest.raises(IndexLoadError, match=r"damaged.*rebuild"):
        QuoteIndex(copy, MODEL, embedder=embedder)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(IndexLoadError, match="unreadable"):
        QuoteIndex(copy, MODEL, embedder=embedder)


def _jsonl_line(**fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False) + "\n"


def test_jsonl_archive_with_a_bad_line_is_indexed_and_answers(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_article(corpus, "wire.md", WIRE, title="Plant opens", publisher="Avery Post")
    archive = corpus / "export.jsonl"
    archive.write_text(
        _jsonl_line(
            id="hb-1",
            title="Harbour reopens",
            text="The harbour reopened on Monday after the storm damaged three piers.\n\n"
            "Repairs to the last pier will take another month, the port authority said.",
            publisher="Coast Daily",
            date="2025-03-04",
        )
        + '{"title": "Broken", "text": "no closing brace"\n'
        + _jsonl_line(title="Schools", text="The council will open two new schools in May.")
    )
    seen: list[str] = []
    report = _build(corpus, tmp_path / "index", embedder, on_skip=lambda s: seen.append(s.where))
    assert seen == ["export.jsonl line 2"]
    assert [(s.path, s.line) for s in report.skipped] == [("export.jsonl", 2)]
    assert report.articles == 3
    index = QuoteIndex(tmp_path / "index", MODEL, embedder=embedder)
    answer = index.answer("How long will the pier repairs take?")
    assert answer.found
    assert "another month" in answer.quotes[0].text
    source = answer.quotes[0].sources[0]
    assert (source.title, source.publisher, source.path) == (
        "Harbour reopens",
        "Coast Daily",
        "export.jsonl#hb-1",
    )
    assert index.answer("How many homes will the desalination plant supply?").found
    with pytest.raises(StrictBuildError, match=r"export\.jsonl line 2: not JSON"):
        _build(corpus, tmp_path / "index2", embedder, strict=True)


def test_appending_or_editing_an_archive_line_embeds_only_that_article(tmp_path, embedder):
    corpus = tmp_path / "export.jsonl"  # a corpus can be one archive
    stories = [
        _jsonl_line(title=f"Story {n}", text=f"Report {n}: the council met about item {n}.")
        for n in range(5)
    ]
    corpus.write_text("".join(stories))
    index_dir = tmp_path / "index"
    assert (_build(corpus, index_dir, embedder).embedded_articles) == 5
    assert is_up_to_date(corpus, index_dir, MODEL)

    with open(corpus, "a") as archive:
        archive.write(_jsonl_line(title="Story 5", text=WIRE))
    assert not is_up_to_date(corpus, index_dir, MODEL)
    appended = _build(corpus, index_dir, embedder)
    assert (appended.embedded_articles, appended.reused_articles) == (1, 5)

    lines = corpus.read_text().splitlines(keepends=True)
    lines[2] = _jsonl_line(title="Story 2", text="Report 2, corrected: the council did not meet.")
    corpus.write_text("".join(lines))
    edited = _build(corpus, index_dir, embedder)
    assert (edited.embedded_articles, edited.reused_articles) == (1, 5)
    assert is_up_to_date(corpus, index_dir, MODEL)
    stored = load_index(index_dir)
    assert [a.path for a in stored.articles][2:4] == ["export.jsonl#L3", "export.jsonl#L4"]
    assert "corrected" in stored.articles[2].body


def test_an_empty_corpus_is_an_error_and_keeps_the_index(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.md", WIRE, title="Plant opens")
    index_dir = tmp_path / "index"
    _build(corpus, index_dir, embedder)
    before = load_index(index_dir).manifest.build_id
    (corpus / "a.md").unlink()
    with pytest.raises(EmptyCorpusError, match=r"no article files in .*index at .* left as it was"):
        _build(corpus, index_dir, embedder)
    (corpus / "b.md").write_text("")
    with pytest.raises(EmptyCorpusError, match=r"no readable article .*\(1 file\(s\) or line"):
        _build(corpus, index_dir, embedder)
    assert load_index(index_dir).manifest.build_id == before


def test_build_shows_progress_while_splitting(tmp_path):
    """Sentence splitting takes minutes on a large corpus: it shows a bar, like embedding."""
    corpus = tmp_path / "corpus"
    write_article(corpus, "a.md", WIRE, title="Plant opens")
    result = run_index("build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert result.returncode == 0, result.stderr
    for bar in ("reading:", "splitting: 100%", "1/1", "embedding: 100%"):
        assert bar in result.stderr, result.stderr

"""Splitting articles into passages: paragraphs, merged fragments, the model's window."""

from __future__ import annotations

from index.corpus import read_article
from index.passages import merged_blocks, sentence_spans, split_article
from tests.conftest import CORPUS


def _words(text: str) -> int:
    return len(text.split())


def test_bullets_join_the_paragraph_that_introduces_them():
    body = (
        "It further voiced alarm at the use of:\n\n"
        "  • arbitrary arrests and detention\n\n"
        "  • torture to extract confessions\n\n"
        "Rajavi said that this resolution did not go far enough."
    )
    blocks = [body[a:b] for a, b in merged_blocks(body)]
    assert len(blocks) == 2
    assert blocks[0].startswith("It further voiced alarm") and blocks[0].endswith("confessions")


def test_a_dateline_fragment_joins_the_next_paragraph():
    body = "LONDON\n\nThe assembly met on Monday and voted on the text.\n\nA second paragraph."
    blocks = [body[a:b] for a, b in merged_blocks(body)]
    assert blocks[0].startswith("LONDON\n\nThe assembly met")
    assert len(blocks) == 2


def test_long_paragraph_is_split_between_sentences_within_the_window():
    sentence = "The committee reviewed the report on water supply in detail. "
    body = (sentence * 40).strip()
    passages = split_article(body, 0, _words, max_tokens=50)
    assert len(passages) > 1
    for passage in passages:
        assert _words(passage.text) <= 50
        assert passage.text.endswith(".")
        assert body[passage.start : passage.end] == passage.text


def test_seed_passages_are_exact_slices_with_sentence_offsets(embedder):
    for path in sorted(CORPUS.glob("*.md")):
        article = read_article(path)
        passages = split_article(article.body, 0, embedder.count_tokens, embedder.window)
        assert passages
        for passage in passages:
            assert article.body[passage.start : passage.end] == passage.text
            assert passage.sentences
            for a, b in passage.sentences:
                assert passage.text[a:b].strip() == passage.text[a:b]


def test_sentence_spans_cover_each_sentence():
    text = "First sentence here. Second one, with 1,500 people! Third?"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "First sentence here.",
        "Second one, with 1,500 people!",
        "Third?",
    ]


def test_article_without_title_shows_its_opening_words():
    article = read_article(CORPUS / "iran-focus-2016-12-20.md")
    assert article.publisher == "Iran Focus"
    assert article.date == "2016-12-20"
    assert article.title.startswith("London, 20 Dec - The UN General Assembly")
    assert article.title.endswith("…")


def test_sentence_offsets_are_pysbds_own_on_the_seed_articles():
    """The faster offset lookup must give exactly pysbd's char spans, so quotes do not move."""
    import pysbd

    from index.passages import _pysbd_spans

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    paragraphs = 0
    for path in sorted(CORPUS.glob("*.md")):
        body = read_article(path).body
        for start, end in merged_blocks(body):
            text = body[start:end]
            assert _pysbd_spans(text) == [(s.start, s.end) for s in segmenter.segment(text)]
            paragraphs += 1
    assert paragraphs > 40

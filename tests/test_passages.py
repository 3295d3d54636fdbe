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


def test_sentences_run_together_without_a_space_are_cut_apart():
    """Text copied from web pages joins sentences where a line break was; abbreviations stay."""
    text = (
        'Prisoners criticised the regime.The group said: "It must end."Then it ended. '
        "The U.S.Army met Mr.Smith at 5 p.m. on Monday, e.g.Today, in 2019.Nothing more."
    )
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Prisoners criticised the regime.",
        'The group said: "It must end."',
        "Then it ended.",
        "The U.S.Army met Mr.Smith at 5 p.m. on Monday, e.g.Today, in 2019.",
        "Nothing more.",
    ]


def test_a_seed_paragraph_with_joined_sentences_quotes_them_apart():
    body = read_article(CORPUS / "ncri-political-prisoners-statement.md").body
    passages = split_article(body, 0, lambda t: len(t.split()), 256)
    sentences = [s for p in passages for s in p.sentence_texts()]
    assert any(s.endswith("in the regime.") for s in sentences)
    assert not any("regime.The" in s for s in sentences)


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


def test_the_faster_abbreviation_pass_knows_every_odd_case_fold():
    """The abbreviation shortcut is exact only if it knows each character that a
    case-insensitive regex takes for an ASCII letter while its lower case is none."""
    import re

    from index.passages import _CASE_ODD

    letter = re.compile("[a-z]", re.IGNORECASE)
    odd = {
        c for c in map(chr, range(128, 0x110000)) if letter.fullmatch(c) and not c.lower().isascii()
    }
    assert odd == set(_CASE_ODD)


def test_sentence_offsets_match_pysbd_with_abbreviations_and_odd_letters():
    import pysbd

    from index.passages import _pysbd_spans

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    texts = [
        "He met Mr. Smith at St. Mary's. It is no. 5 on the list. Gen. Lee came.",
        "Prices rose 3.5 per cent, e.g. in Jan. and Feb. The co. said so. Fig. 2 shows it.",
        "The ſt. Paul case. İs. it? Then Dr.phil. Meyer spoke at 10 a.m. sharp.",
        "“Quoted,” he said. Ms. Ortiz left — at 5 p.m. — and no. St. It is.",
        "A man. A plan. Is it so? I am. Op. cit. pp. 4–5. Vol. 3, art. 7.",
    ]
    for text in texts:
        assert _pysbd_spans(text) == [(s.start, s.end) for s in segmenter.segment(text)], text

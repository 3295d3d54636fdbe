"""A passage's words as the ranking reads them: the same however they are worked out.

``passage_words`` tokenizes each sentence and, when the sentences are parted by
spaces, puts the passage's word sequence together from theirs instead of
tokenizing the passage again. These tests hold that shortcut to the plain
answer, ``tokenize`` of the whole text, on texts built to cut words, figures
("1,000") and accented letters at sentence boundaries.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from index.analysis import PassageWords, passage_words
from index.lexical import tokenize
from index.recent import Recent

_PIECES = st.sampled_from(
    [
        "Adopted with 85 votes",
        "1,000",
        "1",
        ",000",
        "000",
        " ",
        "  ",
        "\n",
        ".",
        ". ",
        "Céloron",
        "e\u0301",
        "\u0301",
        "ﬁve",
        "ΟΔΟΣ",
        "U.S.",
        "x",
        "’s",
        "20 Dec",
        "-",
    ]
)


@st.composite
def texts_with_sentences(draw: st.DrawFn) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A text, and sentence spans cut anywhere in it (in order, not overlapping)."""
    text = "".join(draw(st.lists(_PIECES, min_size=1, max_size=12)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=8))))
    bounds = [0, *cuts, len(text)]
    spans = [(a, b) for a, b in itertools.pairwise(bounds) if a < b]
    # leave some text outside the sentences, as a splitter may
    skip = draw(st.sets(st.integers(0, max(len(spans) - 1, 0)), max_size=2))
    kept = tuple(span for j, span in enumerate(spans) if j not in skip) or ((0, len(text)),)
    return text, kept


@settings(max_examples=400, deadline=None)
@given(texts_with_sentences())
def test_passage_words_match_tokenizing_the_whole_passage(case):
    text, spans = case
    words = passage_words(text, spans)
    sequence = tokenize(text)
    assert words.sequence == tuple(sequence)
    assert words.tokens == frozenset(sequence)
    # each sentence's distinct tokens, in the order first met
    assert words.sentences == tuple(tuple(dict.fromkeys(tokenize(text[a:b]))) for a, b in spans)
    pairs = frozenset(itertools.pairwise(sequence))
    assert words.pairs_found(pairs) == len(pairs)
    assert PassageWords.decode(words.encode()) == words  # as a segment stores it


def test_sentences_apart_and_not():
    apart = passage_words("One vote. Two votes.", ((0, 9), (10, 20)))
    # the pair across the sentence boundary is kept
    assert apart.pairs_found(frozenset({("vote", "two"), ("two", "one")})) == 1
    cut = passage_words("It cost 1,000 dollars.", ((0, 10), (10, 22)))  # "1," | "000"
    assert "1000" in cut.tokens


def test_a_damaged_record_is_not_read_as_words():
    record = passage_words("Adopted with 85 votes.", ((0, 22),)).encode()
    assert PassageWords.decode(record[:-3]) is None
    assert PassageWords.decode(b"") is None
    assert PassageWords.decode(b"\xe9(\x00\x00\x00\x00") is None  # a tuple of nothing
    assert PassageWords.decode(record) is not None


def test_recent_keeps_what_was_used_lately_and_stays_bounded():
    cache: Recent[int, str] = Recent(3)
    for key in range(10):
        cache.put(key, str(key))
        assert len(cache) <= 2 * 3
    assert cache.get(0) is None  # long gone
    assert cache.get(9) == "9"
    old = [k for k in range(10) if cache.get(k) is not None]
    cache.get(old[0])  # used again: back among the young
    for key in range(100, 103):
        cache.put(key, str(key))
    assert cache.get(old[0]) == str(old[0])


def test_a_passages_words_leave_nothing_for_the_garbage_collector_to_walk():
    """The cache of recent passages holds thousands of these: none of their parts is a set.

    Tuples of strings, once the collector has seen them, are no longer tracked;
    sets always are, and every full collection walked each one (about 1 ms a
    question at 20,000 passages).
    """
    import gc

    text = "The resolution passed with 85 votes in Geneva. It was adopted on 19 December 2016."
    words = PassageWords.decode(passage_words(text, ((0, 46), (47, len(text)))).encode())
    assert words is not None
    gc.collect()
    parts = [
        words.sequence,
        *words.sentences,
        *words.cardinals,
        *words.names,
        *(n for per_sentence in words.number_neighbours for n in per_sentence),
    ]
    assert ("85",) in words.cardinals and any("vote" in n for n in words.number_neighbours[0])
    assert not any(gc.is_tracked(part) for part in parts)
    assert not any(isinstance(part, (set, frozenset)) for part in parts)

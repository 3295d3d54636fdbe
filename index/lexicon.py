"""The corpus's words: how rare each is, and what each passage and sentence holds.

The ranking features ask the same few things of a passage again and again:
which of the question's words it has, sentence by sentence; which numbers,
years and names each sentence carries (the kind of thing a "how many", "when"
or "who" question wants); which words its whole article has. This module
answers those from the stored index, working each passage out once, the first
time it is a candidate, and keeping it.

Document frequencies and each article's words were counted when the index was
built; nothing here touches every passage.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from index.backend import PassageStore
from index.lexical import tokenize
from index.recent import Recent

_WORD = re.compile(r"\w[\w,.]*\w|\w")
_CAPITALISED = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]*")
_CARDINAL = re.compile(r"^\d[\d,.]*$")
_DIGIT = re.compile(r"\d")
_WORD_CHAR = re.compile(r"\w")
_SPACE = re.compile(r"\s")
_YEAR = re.compile(r"^(1[0-9]|20)\d\d$")
# Calendar words mark a sentence that can answer "when": a closed class, not a fitted list.
_CALENDAR = frozenset(
    (
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december", "monday", "tuesday", "wednesday",
        "thursday", "friday", "saturday", "sunday", "century", "centuries", "decade",
        "bc", "ad", "bce", "ce",
    )
)  # fmt: skip
_MONTHS = frozenset(
    (
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    )
)  # fmt: skip
# Numbers written as words count as numbers: "two of the expeditions", "won twice".
_NUMBER_WORDS = frozenset(
    (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
        "eighty", "ninety", "hundred", "hundreds", "thousand", "thousands", "million",
        "millions", "billion", "billions", "trillion", "dozen", "dozens", "twice", "thrice",
        "half",
    )
)  # fmt: skip
CACHED_PASSAGES = 5_000  # per generation; an analysed passage takes some 17 KB: ≤ 170 MB
NUMBER_WINDOW = 3  # words either side of a number that say what it counts


@dataclass(frozen=True)
class PassageWords:
    """One passage's words, whole and sentence by sentence."""

    tokens: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    sentences: tuple[frozenset[str], ...]
    # per sentence: the stems next to each cardinal number (not a year) it holds
    number_neighbours: tuple[tuple[frozenset[str], ...], ...]
    cardinals: tuple[frozenset[str], ...]  # per sentence: its cardinal numbers, as tokens
    dated: tuple[bool, ...]  # per sentence: holds a year or a calendar word
    names: tuple[frozenset[str], ...]  # per sentence: stems of capitalised words past its first


class Lexicon:
    """Word statistics of one loaded index; safe to share between threads.

    Its caches (:class:`index.recent.Recent`) keep the passages and titles of
    recent answers, a bounded number of them.
    """

    def __init__(self, stored: PassageStore) -> None:
        self.stored = stored
        self._bm25 = stored.passage_bm25
        self._passages: Recent[int, PassageWords] = Recent(CACHED_PASSAGES)
        self._titles: Recent[int, frozenset[str]] = Recent(CACHED_PASSAGES)

    def df(self, token: str) -> int:
        return self._bm25.document_frequency(token)

    def known(self, token: str) -> bool:
        return self.df(token) > 0

    def idf(self, token: str) -> float:
        """BM25's (Lucene's) inverse document frequency over passages."""
        return self._bm25.idf(token)

    def article_of(self, i: int) -> int:
        return int(self.stored.passages.article_ids[i])

    def first_of(self, a: int) -> int | None:
        """The opening passage of article ``a``."""
        passages = self.stored.passages_of(a)
        return int(passages[0]) if len(passages) else None

    def is_first(self, i: int) -> bool:
        """Whether passage ``i`` opens its article."""
        return self.first_of(self.article_of(i)) == i

    def passage(self, i: int) -> PassageWords:
        words = self._passages.get(i)
        if words is None:
            passage = self.stored.passages[i]
            words = self._passages.put(i, passage_words(passage.text, passage.sentences))
        return words

    def held_by_articles(
        self, tokens: Sequence[str], articles: Iterable[int]
    ) -> dict[int, frozenset[str]]:
        """For each article, which of ``tokens`` it holds, title included.

        What the ranking asks of an article is only ever about the question's
        words, so this reads them from the article's stored word list instead of
        building the set of all its words (thousands, for a long article).
        """
        ids = sorted(set(articles))
        held = self.stored.article_bm25.holding(list(tokens), ids)
        return {
            a: frozenset(t for t, has in zip(tokens, row, strict=True) if has)
            for a, row in zip(ids, held.tolist(), strict=True)
        }

    def held_by_leads(
        self, tokens: Sequence[str], articles: Iterable[int]
    ) -> dict[int, frozenset[str]]:
        """For each article, which of ``tokens`` its title or opening passage holds.

        Title and opening passage (the *lead*) are where news says what an
        article is about. The opening passages' words are read from the stored
        word lists, in one pass for all the articles, so an article first met
        costs no analysis of its opening passage.
        """
        ids = sorted(set(articles))
        firsts = [self.first_of(a) for a in ids]
        opening = self.stored.passage_bm25.holding(
            list(tokens), [f for f in firsts if f is not None]
        ).tolist()
        held: dict[int, frozenset[str]] = {}
        rows = iter(opening)
        for a, first in zip(ids, firsts, strict=True):
            row = next(rows) if first is not None else [False] * len(tokens)
            title = self.title(a)
            held[a] = frozenset(t for t, has in zip(tokens, row, strict=True) if has or t in title)
        return held

    def title(self, a: int) -> frozenset[str]:
        words = self._titles.get(a)
        if words is None:
            title = self.stored.article(a, body=False).title
            words = self._titles.put(a, frozenset(tokenize(title)))
        return words


def _beside_month(words: list[str], j: int) -> bool:
    return (j > 0 and words[j - 1] in _MONTHS) or (j + 1 < len(words) and words[j + 1] in _MONTHS)


@lru_cache(maxsize=1 << 17)
def _stems(word: str) -> tuple[str, ...]:
    """``tokenize`` of one word, remembered: the same words recur in every passage."""
    return tuple(tokenize(word))


def _apart(text: str, spans: tuple[tuple[int, int], ...]) -> bool:
    """Whether ``text`` tokenizes as its sentences one after another.

    True when what lies outside the sentences holds no word character and
    there is a space at every cut between two sentences (so no word, and no
    "1,000", is cut in two): then the passage need not be tokenized again.
    """
    ends = [0, *(x for span in spans for x in span), len(text)]
    for k in range(0, len(ends), 2):
        start, end = ends[k], ends[k + 1]
        if _WORD_CHAR.search(text, start, end):
            return False
        inner = 0 < k < len(ends) - 2
        if inner and not (_SPACE.search(text, max(start - 1, 0), end + 1)):
            return False
    return True


def passage_words(text: str, sentences: tuple[tuple[int, int], ...]) -> PassageWords:
    """What the features need of one passage's text, sentence by sentence."""
    spans = sentences or ((0, len(text)),)
    sentence_tokens = [tokenize(text[a:b]) for a, b in spans]
    sequence = (
        list(itertools.chain.from_iterable(sentence_tokens))
        if _apart(text, spans)
        else tokenize(text)
    )
    per_sentence: list[frozenset[str]] = []
    neighbours: list[tuple[frozenset[str], ...]] = []
    cardinals: list[frozenset[str]] = []
    dated: list[bool] = []
    names: list[frozenset[str]] = []
    for (a, b), tokens in zip(spans, sentence_tokens, strict=True):
        sentence = text[a:b]
        per_sentence.append(frozenset(tokens))
        words = _WORD.findall(sentence)
        lowered_words = [w.lower().rstrip(".,") for w in words]
        has_digits = bool(_DIGIT.search(sentence))
        numbers = (
            [
                j
                for j, word in enumerate(words)
                if lowered_words[j] in _NUMBER_WORDS
                or (
                    _CARDINAL.match(word)
                    and not _YEAR.match(word.replace(",", ""))
                    and not _beside_month(lowered_words, j)  # "20 Dec", "December 19": a date
                )
            ]
            if has_digits or not _NUMBER_WORDS.isdisjoint(lowered_words)
            else []
        )
        stems = [(_stems(w) or ("",))[0] for w in words] if numbers else []
        neighbours.append(
            tuple(
                frozenset(stems[max(0, j - NUMBER_WINDOW) : j])
                | frozenset(stems[j + 1 : j + 1 + NUMBER_WINDOW])
                for j in numbers
            )
        )
        cardinals.append(frozenset(stems[j] for j in numbers if stems[j]))
        dated.append(
            (has_digits and any(_YEAR.match(w) for w in words))
            or not _CALENDAR.isdisjoint(lowered_words)
        )
        first = words[0] if words else ""
        names.append(
            frozenset(
                stem
                for word in _CAPITALISED.findall(sentence)
                if word != first
                for stem in _stems(word)
            )
        )
    return PassageWords(
        tokens=frozenset(sequence),
        bigrams=frozenset(itertools.pairwise(sequence)),
        sentences=tuple(per_sentence),
        number_neighbours=tuple(neighbours),
        cardinals=tuple(cardinals),
        dated=tuple(dated),
        names=tuple(names),
    )

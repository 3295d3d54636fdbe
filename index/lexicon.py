"""The corpus's words: how rare each is, and what each passage, article and title holds.

The ranking features ask the same few things of a candidate passage again and
again (see :mod:`index.analysis`); this module answers them from the stored
index: a passage's analysis as the build stored it, an article's or its lead's
share of the question's words from the stored word lists. Document frequencies
and each article's words were counted when the index was built; nothing here
touches every passage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from index.analysis import PassageWords, passage_words
from index.backend import PassageStore
from index.lexical import tokenize
from index.recent import Recent

# per generation; an analysed passage takes some 4 KB in tuples (9 KB as sets, measured
# with tracemalloc over 5,000 passages of the 20k archive): ≤ 40 MB
CACHED_PASSAGES = 5_000


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
        """Passage ``i``'s words: as the build stored them, else worked out from its text."""
        words = self._passages.get(i)
        if words is None:
            record = self.stored.passage_analysis(i)
            words = PassageWords.decode(record) if record is not None else None
            if words is None:
                passage = self.stored.passages[i]
                words = passage_words(passage.text, passage.sentences)
            words = self._passages.put(i, words)
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

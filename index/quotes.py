"""Choosing what to quote: hit → quote.

Turns ranked hits into an :class:`~index.answers.Answer`: decides "not found"
when the best hit's probability of answering is below the line (see
:mod:`index.answerability`), picks the sentence(s) to highlight, merges a
passage that several articles carry word for word (or nearly) into one quote
that names every source, and keeps passages that differ (say, two death
tolls) as separate quotes, each with its own source.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from index.answers import Answer, Quote, Source
from index.corpus import Article
from index.search import Hit
from index.store import StoredIndex

# A further quote must be nearly as likely to answer as the best one, so a weak
# neighbour is not shown beside a strong answer.
FOLLOWER_RATIO = 0.80
# ...and hold nearly as much of the question. A paragraph as close in wording but
# from an article about another resolution ("67th" where "63rd" was asked) covers
# less of the question than the best quote, and is left out.
FOLLOWER_COVERAGE_RATIO = 0.85
NEAR_DUPLICATE_COSINE = 0.97
NEAR_DUPLICATE_JACCARD = 0.85
HIGHLIGHT_RATIO = 0.95

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")


def source_of(article: Article) -> Source:
    return Source(article.title, article.publisher, article.date, article.url, article.path)


def passage_ref(article: Article, start: int) -> str:
    """A name for a passage that survives rebuilds while its article is unchanged."""
    return f"{article.key}:{start}"


def compose_answer(
    question: str,
    hits: Sequence[Hit],
    stored: StoredIndex,
    k: int,
    min_probability: float,
    *,
    every_hit: bool = False,
) -> Answer:
    """The answer to ``question`` from its ranked ``hits``: up to ``k`` quotes, or not found.

    ``min_probability`` is the "not found" line. With ``every_hit`` the first ``k``
    hits are quotes whatever their probability (for measuring the ranking alone).
    """
    if not hits or hits[0].probability < min_probability:
        return Answer(question, False, ())
    best, best_coverage = hits[0].probability, hits[0].signals["coverage"]
    groups: list[list[Hit]] = []
    texts = _Texts(stored, [hit.passage for hit in hits])
    for hit in hits:
        if not every_hit and (
            hit.probability < min_probability
            or hit.probability < FOLLOWER_RATIO * best
            or hit.signals["coverage"] < FOLLOWER_COVERAGE_RATIO * best_coverage
        ):
            continue
        for group in groups:
            if _near_duplicate(texts, group[0].passage, hit.passage):
                group.append(hit)
                break
        else:
            if len(groups) < k:
                groups.append([hit])
    quotes = tuple(_quote(group, stored) for group in groups)
    return Answer(question, bool(quotes), quotes)


def _quote(group: list[Hit], stored: StoredIndex) -> Quote:
    lead = group[0]
    passage = stored.passages[lead.passage]
    article = stored.articles[passage.article]
    spans = _highlight_spans(lead, passage.sentences)
    sources: list[Source] = []
    for hit in group:
        source = source_of(stored.articles[stored.passages[hit.passage].article])
        if source not in sources:
            sources.append(source)
    return Quote(
        text=passage.text,
        highlights=tuple(passage.text[a:b] for a, b in spans),
        spans=spans,
        score=lead.probability,
        sources=tuple(sources),
        ref=passage_ref(article, passage.start),
    )


def _highlight_spans(
    hit: Hit, sentences: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """The best sentence, and any other nearly as good, in reading order."""
    if not sentences:
        return ()
    scores = hit.sentence_scores
    top = max(scores)
    chosen = [j for j, s in enumerate(scores) if s >= HIGHLIGHT_RATIO * top or s == top]
    return tuple(sentences[j] for j in sorted(chosen)[:2])


def normalized(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", text).strip()


class _Texts:
    """Each passage's text normalized, its figures and its words, worked out once per answer,
    and the hits' passage vectors, read in one call (a row at a time costs 18 µs)."""

    def __init__(self, stored: StoredIndex, passages: list[int]) -> None:
        self.stored = stored
        self._seen: dict[int, tuple[str, set[str], set[str]]] = {}
        rows = np.asarray(stored.passage_vectors[np.asarray(passages, dtype=np.int64)])
        self.vectors = dict(zip(passages, rows, strict=True))  # every passage compared is a hit's

    def of(self, i: int) -> tuple[str, set[str], set[str]]:
        known = self._seen.get(i)
        if known is None:
            text = self.stored.passages[i].text
            flat = normalized(text)
            known = self._seen[i] = (flat, _numbers(text), set(_WORD.findall(flat)))
        return known


def _near_duplicate(texts: _Texts, a: int, b: int) -> bool:
    """Whether passages ``a`` and ``b`` say the same thing with the same figures.

    The cosine of their vectors comes first: it is one dot product, and texts
    that differ only in case or spacing embed alike, so most pairs are settled
    before either text is normalized.
    """
    if a == b:
        return True
    if float(np.dot(texts.vectors[a], texts.vectors[b])) < NEAR_DUPLICATE_COSINE:
        return False
    flat_a, numbers_a, words_a = texts.of(a)
    flat_b, numbers_b, words_b = texts.of(b)
    if flat_a == flat_b:
        return True
    if numbers_a != numbers_b:
        return False  # same wording, other figures: sources that disagree stay apart
    union = words_a | words_b
    return bool(union) and len(words_a & words_b) / len(union) >= NEAR_DUPLICATE_JACCARD


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}

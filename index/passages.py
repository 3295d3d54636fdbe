"""Splitting an article into passages: article → passage.

A passage is what the user sees quoted: a paragraph, verbatim. Fragments that
are not paragraphs on their own (a one-line dateline, the bullet items of a
list) join the paragraph they belong to, and a paragraph longer than the
model's window is split between sentences, so every passage is embedded
whole. Each passage keeps its character offsets in the article body and the
offsets of its sentences, so a quote can highlight the sentence that answers
and "more context" can reach the paragraphs around it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import pysbd
from pysbd.abbreviation_replacer import (
    replace_pre_number_abbr,
    replace_prepositive_abbr,
)
from pysbd.lang.english import English
from pysbd.processor import Processor

Span = tuple[int, int]
TokenCounter = Callable[[str], int]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_BULLET = re.compile(r"^\s*(?:[-*•·▪◦‣]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…:;\"”’)\]]\s*$")
FRAGMENT_CHARS = 60  # a line shorter than this without closing punctuation is a fragment
# Two sentences run together without a space ("…the regime.The group…"), as text
# copied out of web pages often has them where a paragraph or line break was:
# a full stop after two lower-case letters or digits, a capital, then a lower-case
# letter. Abbreviations ("U.S.", "Mr.", "e.g.") do not have two lower-case letters
# before their stop.
_JOINED = re.compile(r"(?<=[a-z0-9]{2}[.!?])[\"”’)\]]?(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Passage:
    """A slice of an article body, ``body[start:end]``, with its sentences."""

    article: int  # index of the article in the index's article list
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]  # offsets within ``text``

    def sentence_texts(self) -> list[str]:
        return [self.text[a:b] for a, b in self.sentences]


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


# ASCII characters str.isspace() (and so the regex ``\s``) takes for white space.
_ASCII_SPACE = str.maketrans({c: " " for c in map(chr, range(128)) if c.isspace()})
_SPACE = re.compile(r"\s")
_LETTERS = re.compile(r"[a-z]+")
# The only characters a case-insensitive regex matches to an ASCII letter although
# their lower case is no ASCII letter (checked over every code point by the tests).
_CASE_ODD = "\u0130\u0131\u017f"


class _FastAbbreviationReplacer(English.AbbreviationReplacer):  # type: ignore[misc,name-defined]
    """pysbd's abbreviation pass with the work that cannot change its result left out.

    The pass is two thirds of pysbd's time. For each of ~190 abbreviations found
    anywhere in a line, pysbd runs a case-insensitive regex for it after white space,
    then one substitution per match. Two shortcuts, each exact:

    - every substitution pysbd makes for an abbreviation turns the period right
      after it into "∯", where the abbreviation follows white space (or the line's
      start). A letters-only abbreviation that is nowhere followed by
      a period in that position ("is" in "this is it", "co" in "control") can change
      nothing, so it is skipped before its regexes run. The pass itself only turns
      periods into "∯", so what it finds at the start holds to its end;
    - each substitution is idempotent (it turns periods into "∯", and a period it
      did not match cannot match after another one changed), so a call repeated on
      the very text it returned before returns it again and is skipped.
    """

    def search_for_abbreviations_in_string(self, text: str) -> str:
        lowered = text.lower()
        word_starts: str | None = " " + (
            lowered.translate(_ASCII_SPACE) if lowered.isascii() else _SPACE.sub(" ", lowered)
        )
        if any(c in text for c in _CASE_ODD):
            word_starts = None
        done: dict[tuple[int, str], str] = {}
        for abbr in self.lang.Abbreviation.ABBREVIATIONS:
            stripped = abbr.strip()
            if stripped not in lowered:
                continue
            if (
                word_starts is not None
                and " " + stripped + "." not in word_starts
                and _LETTERS.fullmatch(stripped)
            ):
                continue
            abbrev_match = re.findall(rf"(?:^|\s|\r|\n){stripped}", text, flags=re.I)
            if not abbrev_match:
                continue
            next_word_start = r"(?<={" + str(re.escape(stripped)) + "} ).{1}"
            char_array = re.findall(next_word_start, text)
            for ind, match in enumerate(abbrev_match):
                text = self._scan(text, match, ind, char_array, done)
        return text

    def _scan(
        self, txt: str, am: str, ind: int, char_array: list[str], done: dict[tuple[int, str], str]
    ) -> str:
        """pysbd's ``scan_for_replacements``, skipping a repeat on unchanged text."""
        char = char_array[ind] if ind < len(char_array) else ""
        abbreviation = self.lang.Abbreviation
        key_word = am.strip().lower()
        if str(char).isupper() and key_word not in abbreviation.PREPOSITIVE_ABBREVIATIONS:
            return txt
        if key_word in abbreviation.PREPOSITIVE_ABBREVIATIONS:
            kind, replace = 0, replace_prepositive_abbr
        elif key_word in abbreviation.NUMBER_ABBREVIATIONS:
            kind, replace = 1, replace_pre_number_abbr
        else:
            kind, replace = 2, self.replace_period_of_abbr
        key = (kind, am.strip())
        if done.get(key) == txt:
            return txt
        txt = replace(txt, am)
        done[key] = txt
        return txt


class _FastProcessor(Processor):
    def abbreviations_replacer(self) -> _FastAbbreviationReplacer:
        return _FastAbbreviationReplacer(self.text, self.lang)


def sentence_spans(text: str) -> list[Span]:
    """Sentence offsets in ``text``, whitespace trimmed; the whole text if no splitter result."""
    spans: list[Span] = []
    for start, end in _pysbd_spans(text):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.extend(_unjoined(text, start, end))
    if not spans and text.strip():
        stripped = text.strip()
        begin = text.index(stripped)
        spans = [(begin, begin + len(stripped))]
    return spans


def _unjoined(text: str, start: int, end: int) -> list[Span]:
    """The span ``start:end`` cut where two sentences run together without a space."""
    cuts = [m.end() for m in _JOINED.finditer(text, start, end) if start < m.end() < end]
    bounds = [start, *cuts, end]
    return list(itertools.pairwise(bounds))


def _pysbd_spans(text: str) -> list[Span]:
    """pysbd's sentence boundaries as ``Segmenter(char_span=True)`` gives them, faster.

    pysbd finds each sentence's offsets by compiling a regex of the escaped
    sentence and scanning the text from its start, once per sentence: a third of
    its time, and its many one-off patterns push its own rules out of ``re``'s
    cache, so those are compiled again and again. Here each sentence is looked
    up with ``str.find`` from where the previous one ended, which gives the same
    offsets: pysbd takes the first occurrence ending after the previous sentence
    (trailing whitespace included, as here).
    """
    if not text:
        return []
    spans: list[Span] = []
    prior_end = 0
    for sentence in _FastProcessor(text, English, char_span=True).process():
        if not sentence:
            continue
        if _overlaps_itself(sentence):
            found = _first_match_after(text, sentence, prior_end)  # pysbd's own scan
        else:
            start = text.find(sentence, max(0, prior_end - len(sentence) + 1))
            found = None if start < 0 else (start, _skip_space(text, start + len(sentence)))
        if found is None:
            continue  # pysbd drops a sentence it cannot find in the text, too
        spans.append(found)
        prior_end = found[1]
    return spans


def _overlaps_itself(sentence: str) -> bool:
    """Whether two occurrences of ``sentence`` can overlap (". . ."), or it starts with space.

    pysbd scans non-overlapping matches from the text's start; only for such a
    sentence can that scan skip the occurrence a search from the previous end finds.
    """
    if sentence[0].isspace():
        return True
    # A proper prefix that is also a suffix starts where the first character recurs.
    first, at = sentence[0], sentence.find(sentence[0], 1)
    while at > 0:
        if sentence.startswith(sentence[at:]):
            return True
        at = sentence.find(first, at + 1)
    return False


def _first_match_after(text: str, sentence: str, prior_end: int) -> Span | None:
    """pysbd's rule exactly: the first non-overlapping match that ends past ``prior_end``."""
    position = 0
    while (start := text.find(sentence, position)) >= 0:
        end = _skip_space(text, start + len(sentence))
        if end > prior_end:
            return start, end
        position = end
    return None


def _skip_space(text: str, end: int) -> int:
    while end < len(text) and text[end].isspace():
        end += 1
    return end


def paragraph_spans(body: str) -> list[Span]:
    """Blank-line separated blocks of ``body``, trimmed of surrounding whitespace."""
    spans: list[Span] = []
    pos = 0
    for match in _PARAGRAPH_BREAK.finditer(body + "\n\n"):
        block = body[pos : match.start()]
        if block.strip():
            lead = len(block) - len(block.lstrip())
            spans.append((pos + lead, pos + len(block.rstrip())))
        pos = match.end()
    return spans


def _is_bullet(text: str) -> bool:
    return bool(_BULLET.match(text))


def _is_fragment(text: str) -> bool:
    """A short line that does not end a sentence: a dateline, a caption, a heading."""
    return "\n" not in text and len(text) < FRAGMENT_CHARS and not _SENTENCE_END.search(text)


def merged_blocks(body: str) -> list[Span]:
    """Paragraphs with fragments and list items joined to the paragraph they belong to."""
    blocks: list[Span] = []
    pending: int | None = None  # start of a fragment waiting for its paragraph
    for start, end in paragraph_spans(body):
        text = body[start:end]
        if _is_bullet(text) and blocks and pending is None:
            # A list continues the paragraph that introduces it.
            blocks[-1] = (blocks[-1][0], end)
            continue
        if _is_fragment(text):
            if pending is None:
                pending = start
            continue
        blocks.append((pending if pending is not None else start, end))
        pending = None
    if pending is not None:
        last_end = paragraph_spans(body)[-1][1]
        if blocks:
            blocks[-1] = (blocks[-1][0], last_end)
        else:
            blocks.append((pending, last_end))
    return blocks


def split_article(
    body: str,
    article: int,
    count_tokens: TokenCounter,
    max_tokens: int,
) -> list[Passage]:
    """The passages of one article body, each within ``max_tokens`` word pieces."""
    passages: list[Passage] = []
    for start, end in merged_blocks(body):
        for a, b in _fit_window(body, start, end, count_tokens, max_tokens):
            text = body[a:b]
            passages.append(Passage(article, a, b, text, tuple(sentence_spans(text))))
    return passages


def _fit_window(
    body: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int
) -> Iterator[Span]:
    """Split ``body[start:end]`` between sentences into pieces of at most ``max_tokens``."""
    text = body[start:end]
    if count_tokens(text) <= max_tokens:
        yield start, end
        return
    piece_start: int | None = None
    piece_end = start
    for a, b in sentence_spans(text):
        a, b = start + a, start + b
        if piece_start is not None and count_tokens(body[piece_start:b]) > max_tokens:
            yield piece_start, piece_end
            piece_start = None
        if piece_start is None:
            piece_start = a
        piece_end = b
    if piece_start is not None:
        # A single sentence longer than the window stays whole: the model truncates
        # its embedding, but the quote the user sees is never cut mid-sentence.
        yield piece_start, piece_end

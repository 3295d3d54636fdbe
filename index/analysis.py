"""What the ranking features need of one passage's text, worked out once, at build.

The features ask the same few things of a candidate passage: which of the
question's words it has, sentence by sentence; which numbers, years and names
each sentence carries (the kind of thing a "how many", "when" or "who" question
wants); which of the question's word pairs stand side by side in it. All of that
depends on the passage alone, so the build works it out (in its worker
processes, beside the sentence splitting) and each segment stores it, one
:mod:`marshal` record per passage; answering reads a record in some 15 µs where
working it out takes some 120 µs, thirty times a question.

:data:`ANALYSIS` names this analysis, with the tokenizer and the record format;
an index built with another is rebuilt by copying (nothing is embedded again),
and until then its passages are worked out the first time they are candidates.
"""

from __future__ import annotations

import itertools
import marshal
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from index.lexical import TOKENIZER, tokenize

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
NUMBER_WINDOW = 3  # words either side of a number that say what it counts


ANALYSIS_VERSION = 2  # bump when what passage_words works out changes (2: tuples, not sets)
ANALYSIS = f"passage-words-v{ANALYSIS_VERSION}+{TOKENIZER}+marshal-{marshal.version}"


@dataclass(frozen=True, slots=True)
class PassageWords:
    """One passage's words, whole and sentence by sentence.

    Every group of words is a tuple of distinct strings, not a set: answering
    keeps thousands of these in its cache of recent passages, and Python's
    collector must walk every set on each full collection (about 1 ms a
    question at 20,000 passages) while it stops tracking tuples of strings.
    What is asked of them is always "which of the question's words", answered
    by the question's own set (``question_words.intersection(sentence)``).
    """

    sequence: tuple[str, ...]  # the passage's tokens in order, as ``tokenize`` gives them
    sentences: tuple[tuple[str, ...], ...]  # per sentence: its distinct tokens
    # per sentence: the stems next to each cardinal number (not a year) it holds
    number_neighbours: tuple[tuple[tuple[str, ...], ...], ...]
    cardinals: tuple[tuple[str, ...], ...]  # per sentence: its cardinal numbers, as tokens
    dated: tuple[bool, ...]  # per sentence: holds a year or a calendar word
    names: tuple[tuple[str, ...], ...]  # per sentence: stems of capitalised words past its first

    @property
    def tokens(self) -> frozenset[str]:
        return frozenset(self.sequence)

    def pairs_found(self, pairs: frozenset[tuple[str, str]]) -> int:
        """How many of the word ``pairs`` stand side by side in the passage."""
        return len(pairs.intersection(itertools.pairwise(self.sequence))) if pairs else 0

    def encode(self) -> bytes:
        """The record a segment stores (strings shared within it are written once)."""
        return marshal.dumps(
            (
                self.sequence,
                self.sentences,
                self.number_neighbours,
                self.cardinals,
                self.dated,
                self.names,
            ),
            marshal.version,
        )

    @classmethod
    def decode(cls, record: bytes) -> PassageWords | None:
        """The passage's words from a stored record; None when the record is not one."""
        try:
            fields = marshal.loads(record)
            return cls(*fields) if isinstance(fields, tuple) and len(fields) == 6 else None
        except (ValueError, EOFError, TypeError):
            return None


def _distinct(words: Iterable[str]) -> tuple[str, ...]:
    """The distinct ``words``, in the order first met."""
    return tuple(dict.fromkeys(words))


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


def analysis_record(text: str, sentences: tuple[tuple[int, int], ...]) -> bytes:
    """The stored record of a passage's analysis (what a segment keeps per passage)."""
    return passage_words(text, sentences).encode()


def passage_words(text: str, sentences: tuple[tuple[int, int], ...]) -> PassageWords:
    """What the features need of one passage's text, sentence by sentence."""
    spans = sentences or ((0, len(text)),)
    sentence_tokens = [tokenize(text[a:b]) for a, b in spans]
    sequence = (
        list(itertools.chain.from_iterable(sentence_tokens))
        if _apart(text, spans)
        else tokenize(text)
    )
    per_sentence: list[tuple[str, ...]] = []
    neighbours: list[tuple[tuple[str, ...], ...]] = []
    cardinals: list[tuple[str, ...]] = []
    dated: list[bool] = []
    names: list[tuple[str, ...]] = []
    for (a, b), tokens in zip(spans, sentence_tokens, strict=True):
        sentence = text[a:b]
        per_sentence.append(_distinct(tokens))
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
                _distinct(
                    (*stems[max(0, j - NUMBER_WINDOW) : j], *stems[j + 1 : j + 1 + NUMBER_WINDOW])
                )
                for j in numbers
            )
        )
        cardinals.append(_distinct(stems[j] for j in numbers if stems[j]))
        dated.append(
            (has_digits and any(_YEAR.match(w) for w in words))
            or not _CALENDAR.isdisjoint(lowered_words)
        )
        first = words[0] if words else ""
        names.append(
            _distinct(
                stem
                for word in _CAPITALISED.findall(sentence)
                if word != first
                for stem in _stems(word)
            )
        )
    return PassageWords(
        sequence=tuple(sequence),
        sentences=tuple(per_sentence),
        number_neighbours=tuple(neighbours),
        cardinals=tuple(cardinals),
        dated=tuple(dated),
        names=tuple(names),
    )

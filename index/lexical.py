"""Lexical scoring with BM25: the exact words, numbers and names of a question.

Dense embeddings blur "63rd" into "67th" and "85" into "79"; BM25 does not.
The same tokenizer is used for passages, whole articles and questions, and
its settings are recorded in the manifest so an index is always queried the
way it was built.

The index keeps, per segment of the store (see ``index/store.py``), an inverted
index (word → the documents holding it, with how often) and a forward one
(document → its words), memory-mapped. A question reads only the posting lists
of its own words: the best documents come out of those (:meth:`LexicalIndex.search`)
without a score for every document of the corpus. Scores are BM25 as bm25s
computes them ("lucene" variant, k1 1.5, b 0.75, which this index used before),
with the document frequencies and mean length of the live documents of every
segment together, so an index built in several steps scores exactly like one
built at once.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer

from index.arrays import concat_ranges, mapped

# Name of the tokenization below, recorded in the manifest.
TOKENIZER = "words-folded-sklearn-stop-snowball-v2"
K1 = 1.5  # bm25s's defaults, which the index used before it kept its own postings
B = 0.75
EMPTY = "\u2205"  # the one token of a document without words (as bm25s was given)
_THOUSANDS = re.compile(r"(?<=\d)[,.](?=\d{3}\b)")
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Words that tell what kind of question it is but not what it is about. scikit-learn's
# list (already installed with sentence-transformers) less the number words, because
# "the third resolution" must not lose its "third".
# fmt: off
_NUMBER_WORDS = frozenset({
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "fifteen", "twenty", "forty", "fifty", "sixty", "hundred",
    "first", "second", "third", "fourth", "fifth", "sixth",
})
# fmt: on
_EXTRA_STOPWORDS = frozenset({"did", "does", "say", "says", "said", "according", "s", "t"})


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    # Imported on first use: scikit-learn takes a second to import, and
    # sentence-transformers imports it anyway once a model is loaded.
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return (frozenset(ENGLISH_STOP_WORDS) - _NUMBER_WORDS) | _EXTRA_STOPWORDS


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def fold(text: str) -> str:
    """Lower case without accents: "Céloron" and "Celoron" are one word to a reader."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    if _ASTRAL.search(decomposed):  # beyond the table below: the slow, general way
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return decomposed.translate(_combining_marks())


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@lru_cache(maxsize=1)
def _combining_marks() -> dict[int, None]:
    """A ``str.translate`` table deleting every combining mark of the Basic Multilingual Plane.

    Text with one curly quote is not ASCII, so most news takes this path;
    a table lookup in C is some ten times faster than a test per character.
    """
    return {cp: None for cp in range(0x10000) if unicodedata.combining(chr(cp))}


def tokenize(text: str) -> list[str]:
    """Folded, stemmed content words; ``1,500`` and ``1500`` become the same token."""
    words = _TOKEN.findall(_THOUSANDS.sub("", fold(text)))
    stopwords = _stopwords()
    words = [w for w in words if w not in stopwords]
    return _stemmer().stemWords(words)


def idf(document_frequency: int, documents: int) -> float:
    """BM25's (Lucene's) inverse document frequency."""
    return math.log(1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


@dataclass(frozen=True)
class Words:
    """A document's words as BM25 counts them: distinct terms, their counts, its length."""

    terms: Sequence[str]
    counts: Sequence[int]
    length: int


def count_words(tokens: Sequence[str]) -> Words:
    """The :class:`Words` of a token list (a document without words holds ``EMPTY``)."""
    counted = Counter(tokens) if tokens else Counter({EMPTY: 1})
    return Words(list(counted), list(counted.values()), len(tokens) or 1)


# ------------------------------------------------------------------ one segment's words

_ARRAYS = (
    "postings-indptr",  # int64, terms + 1: where each term's postings start
    "postings-docs",  # int32: the documents holding each term, ascending
    "postings-tf",  # int32: how often the term occurs in each of them
    "lengths",  # int32, documents: tokens per document (BM25's document length)
    "forward-indptr",  # int64, documents + 1: where each document's terms start
    "forward-terms",  # int32: the distinct terms of each document
    "forward-tf",  # int32: and how often each occurs in it
)
TERMS_FILE = "terms.txt"


class Postings:
    """The words of one segment's documents: inverted and forward, read-only.

    Loaded from a folder, the arrays are memory-mapped: nothing is parsed but
    the term list (one line per term, its line number its id).
    """

    def __init__(self, terms: list[str], arrays: dict[str, np.ndarray]) -> None:
        self.terms = terms
        self.vocab = {term: i for i, term in enumerate(terms)}
        self.indptr = arrays["postings-indptr"]
        self.docs = arrays["postings-docs"]
        self.tf = arrays["postings-tf"]
        self.lengths = arrays["lengths"]
        self.forward_indptr = arrays["forward-indptr"]
        self.forward_terms = arrays["forward-terms"]
        self.forward_tf = arrays["forward-tf"]

    @property
    def documents(self) -> int:
        return len(self.lengths)

    @classmethod
    def load(cls, directory: Path) -> Postings:
        text = (directory / TERMS_FILE).read_text(encoding="utf-8")
        terms = text.split("\n")[:-1] if text else []
        arrays = {name: mapped(directory / f"{name}.npy") for name in _ARRAYS}
        postings = cls(terms, arrays)
        if len(postings.indptr) != len(terms) + 1 or postings.indptr[-1] != len(postings.docs):
            raise ValueError(f"{directory}: postings do not match the term list")
        return postings

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TERMS_FILE).write_text("".join(f"{t}\n" for t in self.terms), encoding="utf-8")
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", np.asarray(self.array(name)), allow_pickle=False)

    def array(self, name: str) -> np.ndarray:
        return {
            "postings-indptr": self.indptr,
            "postings-docs": self.docs,
            "postings-tf": self.tf,
            "lengths": self.lengths,
            "forward-indptr": self.forward_indptr,
            "forward-terms": self.forward_terms,
            "forward-tf": self.forward_tf,
        }[name]

    def document_terms(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct term ids of document ``doc`` and their counts."""
        lo, hi = int(self.forward_indptr[doc]), int(self.forward_indptr[doc + 1])
        return self.forward_terms[lo:hi], self.forward_tf[lo:hi]

    def term_documents(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """The documents holding term ``term``, in ascending order, and its count in each."""
        lo, hi = int(self.indptr[term]), int(self.indptr[term + 1])
        return self.docs[lo:hi], self.tf[lo:hi]


class PostingsWriter:
    """Collects documents' tokens one document at a time, then writes a :class:`Postings`.

    Kept as flat integer arrays (a few bytes per distinct word of a document), so a
    million passages fit in a few hundred megabytes while a build collects them.
    """

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.terms: list[str] = []
        self._terms = array("i")
        self._tf = array("i")
        self._counts = array("i")  # distinct terms per document
        self._lengths = array("i")

    @property
    def documents(self) -> int:
        return len(self._lengths)

    def add(self, tokens: Sequence[str]) -> None:
        """One document, as its token list (empty: the document holds no word)."""
        words = count_words(tokens)
        self.add_counted(words.terms, words.counts, words.length)

    def add_counted(self, terms: Iterable[str], counts: Iterable[int], length: int) -> None:
        """One document as its distinct terms, their counts and its length in tokens."""
        vocab = self.vocab
        distinct = 0
        for term in terms:
            tid = vocab.get(term)
            if tid is None:
                tid = vocab[term] = len(self.terms)
                self.terms.append(term)
            self._terms.append(tid)
            distinct += 1
        self._tf.extend(counts)
        self._counts.append(distinct)
        self._lengths.append(length)

    def finish(self) -> Postings:
        """The collected documents as postings held in memory (write them with ``save``)."""
        counts = (
            np.frombuffer(self._counts, dtype=np.int32) if self._counts else np.zeros(0, np.int32)
        )
        forward_terms = (
            np.frombuffer(self._terms, dtype=np.int32).copy()
            if self._terms
            else np.zeros(0, np.int32)
        )
        forward_tf = (
            np.frombuffer(self._tf, dtype=np.int32).copy() if self._tf else np.zeros(0, np.int32)
        )
        forward_indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=forward_indptr[1:])
        doc_of = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        order = np.argsort(forward_terms, kind="stable")  # documents stay ascending per term
        indptr = np.zeros(len(self.terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(forward_terms, minlength=len(self.terms)), out=indptr[1:])
        lengths = (
            np.frombuffer(self._lengths, dtype=np.int32).copy()
            if self._lengths
            else np.zeros(0, np.int32)
        )
        return Postings(
            list(self.terms),
            {
                "postings-indptr": indptr,
                "postings-docs": doc_of[order],
                "postings-tf": forward_tf[order],
                "lengths": lengths,
                "forward-indptr": forward_indptr,
                "forward-terms": forward_terms,
                "forward-tf": forward_tf,
            },
        )


# ------------------------------------------------------------------ BM25 over segments


class LexicalIndex:
    """BM25 over the documents of one or more segments, numbered as the store numbers them.

    ``parts`` are the segments' postings; ``logical[i]`` maps part ``i``'s local
    document numbers to the store's (-1: a document since removed or replaced),
    or is None when part ``i`` is the only one and nothing was removed. Safe to
    share between threads: it is read-only but for each thread's score array
    (:class:`_Scratch`).
    """

    def __init__(
        self,
        parts: Sequence[Postings],
        logical: Sequence[np.ndarray | None],
        size: int,
        where: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``where``: for each document of the store, its part and local number (None: one
        part, numbered as the store numbers them)."""
        self._parts = list(parts)
        self._logical = list(logical)
        self._size = size
        self._where = where
        self._live_df: list[np.ndarray] = []
        total_length = 0
        for part, mapping in zip(self._parts, self._logical, strict=True):
            df = np.diff(np.asarray(part.indptr)).astype(np.int64)
            lengths = np.asarray(part.lengths)
            if mapping is not None and (mapping < 0).any():
                dead = np.flatnonzero(mapping < 0)
                starts = np.asarray(part.forward_indptr)[dead]
                ends = np.asarray(part.forward_indptr)[dead + 1]
                rows = concat_ranges(starts, ends)
                df -= np.bincount(np.asarray(part.forward_terms)[rows], minlength=len(df))
                lengths = lengths[mapping >= 0]
            self._live_df.append(df)
            total_length += int(lengths.sum(dtype=np.int64))
        self._avgdl = total_length / size if size else 1.0
        self._scratch = threading.local()
        self._frequencies: dict[str, int] | None = None

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """An index of ``texts`` held in memory (a store builds its own per segment)."""
        writer = PostingsWriter()
        for text in texts:
            writer.add(tokenize(text))
        return cls([writer.finish()], [None], len(texts))

    @property
    def size(self) -> int:
        """How many documents the index holds."""
        return self._size

    @property
    def vocabulary_size(self) -> int:
        """How many distinct words the documents hold."""
        return len(self.document_frequencies())

    def document_frequency(self, token: str) -> int:
        """How many documents hold ``token``."""
        total = 0
        for part, df in zip(self._parts, self._live_df, strict=True):
            tid = part.vocab.get(token)
            if tid is not None:
                total += int(df[tid])
        return total

    def document_frequencies(self) -> dict[str, int]:
        """How many documents hold each word (every word of the index; built once, kept)."""
        if self._frequencies is None:
            merged: dict[str, int] = {}
            for part, df in zip(self._parts, self._live_df, strict=True):
                for term, count in zip(part.terms, df.tolist(), strict=True):
                    if count > 0 and term != EMPTY:
                        merged[term] = merged.get(term, 0) + count
            self._frequencies = merged
        return self._frequencies

    def idf(self, token: str) -> float:
        return idf(self.document_frequency(token), self._size)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document; zeros when no query word is known.

        Costs an array the size of the corpus: the ranking uses :meth:`search` and
        :meth:`scores_of` instead, which read only the query words' postings.
        """
        return self._accumulate(tuple(query_tokens))[0].copy()

    def search(self, query_tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents for the query, best first: (ids, scores).

        Only documents holding a query word are returned (fewer than ``k`` if fewer do);
        equal scores are ordered by document number.
        """
        scores, touched = self._accumulate(tuple(query_tokens))
        if not touched or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        candidates = np.concatenate(touched)
        values = scores[candidates]
        # A document is in at most one posting list per query word: the best
        # k × words entries hold every one of the best k documents.
        room = k * len(query_tokens)
        if len(candidates) > room:
            keep = np.argpartition(-values, room - 1)[:room]
            candidates = candidates[keep]
        ids = np.unique(candidates)
        best = scores[ids]
        order = np.lexsort((ids, -best))[:k]
        return ids[order].astype(np.int64), best[order]

    def scores_of(self, query_tokens: Sequence[str], ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The BM25 scores of the documents ``ids`` only (float32, in the order given)."""
        scores, _ = self._accumulate(tuple(query_tokens))
        return scores[np.asarray(ids, dtype=np.int64)]

    def tokens_of(self, doc: int) -> frozenset[str]:
        """The distinct words of document ``doc`` (as counted when the index was built)."""
        part_no, local = self._locate(np.array([doc], dtype=np.int64))
        part = self._parts[int(part_no[0])]
        terms, _ = part.document_terms(int(local[0]))
        words = part.terms
        return frozenset(words[t] for t in terms.tolist() if words[t] != EMPTY)

    def holding(self, query_tokens: Sequence[str], ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Which query words each document holds: bool, ``len(ids)`` × ``len(query_tokens)``.

        Each word's posting list is in ascending document order (the build keeps
        it so), so whether a document is on it is a binary search: a question's
        few words cost a few searches per document, whatever the length of the
        documents (whole articles, thousands of words) or of the lists.
        """
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), len(query_tokens)), dtype=bool)
        if not len(ids) or not len(query_tokens):
            return out
        part_of, local = self._locate(ids)
        for p, part in enumerate(self._parts):
            rows = np.flatnonzero(part_of == p)
            if not len(rows):
                continue
            docs = local[rows]
            for j, token in enumerate(query_tokens):
                tid = part.vocab.get(token)
                if tid is None:
                    continue
                posting, _ = part.term_documents(tid)
                if not len(posting):
                    continue
                at = np.minimum(np.searchsorted(posting, docs), len(posting) - 1)
                out[rows, j] |= np.asarray(posting[at]) == docs
        return out

    def _locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._where is None:
            return np.zeros(len(ids), dtype=np.int64), ids
        return self._where[0][ids], self._where[1][ids]

    def _accumulate(self, tokens: tuple[str, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every document's score for ``tokens`` (read-only, valid until this thread asks
        for other words), and the documents each word's postings touched."""
        scratch: _Scratch | None = getattr(self._scratch, "state", None)
        if scratch is None:
            scratch = self._scratch.state = _Scratch(self._size)
        if scratch.tokens == tokens:
            return scratch.view, scratch.touched
        scratch.clear()
        scores, touched = scratch.scores, scratch.touched
        for token in tokens:
            df = self.document_frequency(token)
            if df == 0:
                continue
            weight = np.float32(idf(df, self._size))
            for part, mapping in zip(self._parts, self._logical, strict=True):
                tid = part.vocab.get(token)
                if tid is None:
                    continue
                docs, tf = part.term_documents(tid)
                docs = np.asarray(docs)
                tf = np.asarray(tf, dtype=np.float64)
                lengths = np.asarray(part.lengths)[docs]
                # bm25s: idf (float32) × tf / (k1 (1 - b + b·len/avgdl) + tf), stored as float32
                gain = weight * (tf / (K1 * ((1 - B) + B * lengths / self._avgdl) + tf))
                gain = gain.astype(np.float32)
                if mapping is not None:
                    docs = mapping[docs]
                    live = docs >= 0
                    docs, gain = docs[live], gain[live]
                touched.append(docs.astype(np.int64, copy=False))  # first: clear() finds them
                scores[docs] += gain  # a document is once in a posting list: no clash
        scratch.tokens = tokens
        return scratch.view, touched


class _Scratch:
    """One thread's BM25 scores of every document, for the words it asked for last.

    Kept and reused, question after question: a fresh array the size of the corpus
    for each question (4 MB at a million passages) came from the system as new
    pages, and faulting them in cost the first questions after a load 2-3 ms each
    (scale benchmark, README). Clearing zeroes only the documents the last
    question's words touched.
    """

    def __init__(self, size: int) -> None:
        self.scores = np.zeros(size, dtype=np.float32)
        self.scores.fill(0.0)  # its pages faulted in now, not by the first question
        self.view = self.scores.view()
        self.view.setflags(write=False)
        self.tokens: tuple[str, ...] | None = None
        self.touched: list[np.ndarray] = []

    def clear(self) -> None:
        for docs in self.touched:
            self.scores[docs] = 0.0
        self.tokens = None
        self.touched = []

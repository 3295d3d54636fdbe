"""Lexical scoring with BM25 (bm25s): the exact words, numbers and names of a question.

Dense embeddings blur "63rd" into "67th" and "85" into "79"; BM25 does not.
The same tokenizer is used for passages, whole articles and questions, and
its settings are recorded in the manifest so an index is always queried the
way it was built.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

# Name of the tokenization below, recorded in the manifest.
TOKENIZER = "words-folded-sklearn-stop-snowball-v2"
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
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """Folded, stemmed content words; ``1,500`` and ``1500`` become the same token."""
    words = _TOKEN.findall(_THOUSANDS.sub("", fold(text)))
    stopwords = _stopwords()
    words = [w for w in words if w not in stopwords]
    return _stemmer().stemWords(words)


class LexicalIndex:
    """BM25 over a list of texts, scoring every text for a question at once."""

    def __init__(self, model: bm25s.BM25) -> None:
        self._model = model
        self._vocab: dict[str, int] = model.vocab_dict

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        model = bm25s.BM25()
        tokens = [tokenize(text) or ["\u2205"] for text in texts]
        model.index(tokens, show_progress=False)
        return cls(model)

    def save(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        return cls(bm25s.BM25.load(str(directory), show_progress=False))

    @property
    def size(self) -> int:
        return int(self._model.scores["num_docs"])

    def document_frequencies(self) -> dict[str, int]:
        """How many texts hold each word: read off the index, nothing is counted again."""
        indptr = np.asarray(self._model.scores["indptr"])
        counts = np.diff(indptr).tolist()
        # bm25s keeps a placeholder "" in its vocabulary with no column of its own.
        return {token: counts[i] for token, i in self._vocab.items() if i < len(counts) and token}

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every text; zeros when no query word is in the vocabulary."""
        known = [self._vocab[t] for t in query_tokens if t in self._vocab]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(known), dtype=np.float32)

"""A long sentence read in windows: where they fall, what the build stores, what answering reads."""

from __future__ import annotations

import numpy as np

from index.candidates import gather
from index.question import parse_question
from index.store import load_index
from index.windows import (
    LONG_SENTENCE,
    WINDOW_STEP,
    WINDOW_WORDS,
    read_windows,
    sentence_windows,
    sharpened,
    windows_record,
)


def _words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{k}" for k in range(n))


def test_only_long_sentences_get_windows_of_twelve_words_every_six():
    short = _words(LONG_SENTENCE) + "."
    long = _words(30, "x") + "."
    text = f"{short} {long}"
    spans = ((0, len(short)), (len(short) + 1, len(text)))
    windows = sentence_windows(text, spans)
    assert {j for j, _, _ in windows} == {1}
    slices = [text[a:b].split() for _, a, b in windows]
    assert [s[0] for s in slices] == [f"x{k}" for k in range(0, 30 - WINDOW_WORDS + 1, WINDOW_STEP)]
    assert all(len(s) == WINDOW_WORDS for s in slices)
    assert slices[-1][-1] == "x29."  # the last window reaches the sentence's end
    for _, a, b in windows:  # each window is a verbatim slice that starts and ends on a word
        assert text[a:b] == text[a:b].strip() and a >= spans[1][0] and b <= spans[1][1]


def test_a_window_record_keeps_each_cosine_to_a_few_thousandths():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(9, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[3] * 0.6 + rng.normal(size=384).astype(np.float32) * 0.05
    query /= np.linalg.norm(query)
    record = windows_record([0, 0, 1, 1, 1, 2, 2, 4, 4], vectors)
    sizes, owners, scales, codes = read_windows([record, None, b"", record[:-5]], 384)
    assert sizes.tolist() == [9, 0, 0, 8]  # a cut record keeps its whole rows
    assert owners.tolist() == [0, 0, 1, 1, 1, 2, 2, 4, 4, 0, 0, 1, 1, 1, 2, 2, 4]
    assert np.abs((codes[:9] @ query) * scales[:9] - vectors @ query).max() < 0.005
    assert [len(a) for a in read_windows([None], 384)] == [1, 0, 0, 0]
    assert windows_record([], np.zeros((0, 384))) == b""


def test_a_sentence_cosine_rises_halfway_to_its_best_window_and_never_falls():
    cosines = np.array([0.30, 0.50, 0.20])
    owners = np.array([0, 0, 1, 2])
    windows = np.array([0.50, 0.60, 0.40, 0.10])
    assert np.allclose(sharpened(cosines, owners, windows), [0.45, 0.50, 0.20])
    assert np.allclose(sharpened(cosines, np.zeros(0, np.int64), np.zeros(0)), cosines)


def test_the_build_stores_the_windows_vectors_and_the_shortlist_reads_them(
    seed_index_dir, embedder
):
    """The flagship's 67-word sentence: its stored windows are the model's vectors of
    their texts, and the candidates' cosine for it is raised by its first window."""
    stored = load_index(seed_index_dir)
    flagship = next(
        i for i, p in enumerate(stored.passages) if p.text.startswith("Adopted with 85 votes")
    )
    passage = stored.passages[flagship]
    spans = sentence_windows(passage.text, passage.sentences)
    _, owners, scales, codes = read_windows([stored.passage_windows(flagship)], 384)
    assert owners.tolist() == [j for j, _, _ in spans] and len(spans) >= 5
    texts = [passage.text[a:b] for _, a, b in spans]
    assert texts[0].startswith("Adopted with 85 votes in favor, this resolution")
    expected = embedder.encode(texts, 16)
    stored_vectors = codes.astype(np.float32) * scales[:, None]
    agreement = np.sum(stored_vectors * expected, axis=1) / np.linalg.norm(stored_vectors, axis=1)
    assert agreement.min() > 0.99, agreement.min()

    question = "how many votes did the 63rd resolution receive?"
    vector = embedder.encode_query(question)
    candidates = gather(stored, vector, list(parse_question(question, _Idf()).tokens))
    r = candidates.ids.tolist().index(flagship)
    rows = stored.sentence_rows(flagship)
    raw = np.asarray(stored.sentence_vectors[np.arange(rows.start, rows.stop)]) @ vector
    first = owners[0]
    window_best = float((expected[owners == first] @ vector).max())
    assert window_best > raw[first] + 0.1  # the clause is closer than the sentence
    got = candidates.sentence_cosines[r]
    assert abs(got[first] - (raw[first] + window_best) / 2) < 0.01
    others = [j for j in range(len(raw)) if j not in set(owners.tolist())]
    assert np.allclose(np.asarray(got)[others], raw[others], atol=1e-5)


class _Idf:
    """Every word known, weight 1: the candidates only need the question's words here."""

    def idf(self, token: str) -> float:
        return 1.0

    def known(self, token: str) -> bool:
        return True

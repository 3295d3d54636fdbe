"""A long sentence read in short windows, so the clause that answers is not blurred.

A sentence's vector is the mean of its words' meaning: in a long sentence the
clause that answers is a small part of it. The flagship's "Adopted with 85
votes in favor, this resolution, expresses…" runs to 67 words and has a cosine
of 0.32 with "how many votes did the 63rd resolution receive?"; its first 12
words have 0.55. So the build embeds every sentence of more than
:data:`LONG_SENTENCE` words again in windows of :data:`WINDOW_WORDS` words,
one starting every :data:`WINDOW_STEP`, and a candidate sentence's cosine is
the mean of its own and its best window's (:func:`sharpened`). The best window
alone in its place ranked worse (README, "What it scores").

Windows are only read for the shortlisted passages, so they are stored per
passage, one record each (:func:`windows_record`), a fixed-size row per window:
which sentence it belongs to, and its vector in int8 with one scale (half the
bytes of float16; the cosine moves by some 0.003). The shortlist's records are
read as one array (:func:`read_windows`).
"""

from __future__ import annotations

import re

import numpy as np

WINDOW_WORDS = 12
WINDOW_STEP = 6
LONG_SENTENCE = WINDOW_WORDS + WINDOW_STEP  # words; a shorter sentence is read whole
WINDOWS = f"sentence-windows-v2-{WINDOW_WORDS}w{WINDOW_STEP}-int8"

_WORD = re.compile(r"\S+")


def sentence_windows(
    text: str, sentences: tuple[tuple[int, int], ...]
) -> list[tuple[int, int, int]]:
    """``(sentence, start, end)`` of each window of each long sentence, offsets in ``text``."""
    out: list[tuple[int, int, int]] = []
    for j, (a, b) in enumerate(sentences):
        words = [(m.start(), m.end()) for m in _WORD.finditer(text, a, b)]
        if len(words) <= LONG_SENTENCE:
            continue
        for first in range(0, len(words) - WINDOW_WORDS + WINDOW_STEP, WINDOW_STEP):
            last = min(first + WINDOW_WORDS, len(words)) - 1
            out.append((j, words[first][0], words[last][1]))
    return out


def _row(dimension: int) -> np.dtype:
    """One window as stored: its sentence's number in the passage, its scale, its codes."""
    return np.dtype([("owner", "<u2"), ("scale", "<f4"), ("codes", "i1", (dimension,))])


def windows_record(owners: list[int], vectors: np.ndarray) -> bytes:
    """The stored record of one passage's windows: one fixed-size row per window."""
    if not len(owners):
        return b""
    vectors = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(vectors).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    rows = np.zeros(len(owners), dtype=_row(vectors.shape[1]))
    rows["owner"] = owners
    rows["scale"] = scales
    rows["codes"] = np.rint(vectors / scales[:, None])
    return rows.tobytes()


def read_windows(
    records: list[bytes | None], dimension: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(sizes, owners, scales, codes)`` of several passages' records read as one:
    how many windows each passage has, then every window's row, passage after passage."""
    row = _row(dimension)
    sizes = np.fromiter((len(r or b"") // row.itemsize for r in records), np.int64, len(records))
    whole = (sizes * row.itemsize).tolist()
    joined = b"".join(
        r if len(r) == n else r[:n] for r, n in zip(records, whole, strict=True) if r and n
    )
    rows = np.frombuffer(joined, dtype=row)
    return sizes, rows["owner"].astype(np.int64), rows["scale"], rows["codes"]


def sharpened(cosines: np.ndarray, owners: np.ndarray, window_cosines: np.ndarray) -> np.ndarray:
    """Each sentence's cosine as the mean of its own and its best window's (when better)."""
    if not len(owners):
        return cosines
    best = np.full(len(cosines), -np.inf)
    keep = (owners >= 0) & (owners < len(cosines))
    np.maximum.at(best, owners[keep], window_cosines[keep])
    out = np.asarray(cosines, dtype=np.float64).copy()
    has = np.isfinite(best)
    out[has] = (out[has] + np.maximum(out[has], best[has])) / 2.0
    return out

"""What the index gives back: sources, verbatim quotes and answers.

These are the only types the bot needs. They carry article text exactly as it
appears in the article (never rewritten), so anything that presents them can
only quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """Where a quote comes from: one article's metadata."""

    title: str
    publisher: str | None
    date: str | None
    url: str | None
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "publisher": self.publisher,
            "date": self.date,
            "url": self.url,
            "path": self.path,
        }

    def line(self) -> str:
        """The plain source line: ``title — publisher, date``."""
        tail = ", ".join(part for part in (self.publisher, self.date) if part)
        return f"{self.title} — {tail}" if tail else self.title


@dataclass(frozen=True)
class Quote:
    """One passage quoted verbatim, with the sentence(s) that answer highlighted.

    ``highlights`` are substrings of ``text``; ``spans`` are their
    ``(start, end)`` character offsets in ``text``, so a formatter can mark
    them without searching. ``ref`` names the passage in a way that survives
    index rebuilds (article content hash + offset) for "show more context".
    """

    text: str
    highlights: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    score: float
    sources: tuple[Source, ...]
    ref: str

    def to_json(self) -> dict[str, Any]:
        return {
            "quote": self.text,
            "highlights": list(self.highlights),
            "score": round(self.score, 4),
            "sources": [source.to_json() for source in self.sources],
        }


@dataclass(frozen=True)
class Answer:
    """The reply to one question: quotes, or ``found=False`` when nothing answers."""

    question: str
    found: bool
    quotes: tuple[Quote, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "found": self.found,
            "answers": [quote.to_json() for quote in self.quotes],
        }


@dataclass(frozen=True)
class Context:
    """A quoted passage with its neighbours in the same article, for "show more"."""

    source: Source
    passages: tuple[str, ...]
    focus: int  # which of ``passages`` is the quoted one
    ref: str

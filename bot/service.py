"""The bot's hold on the index: answer off the event loop, reload without stopping.

Searching is CPU work (tens of milliseconds) in a synchronous library, so every
call runs in a worker thread (:func:`asyncio.to_thread`): one user's question never
stalls another's update. A reload loads the new :class:`QuoteIndex` in a thread too,
reusing the loaded embedding model when the new build uses the same one, and then
swaps a single reference — questions in flight finish on the index they started
with, and new ones use the new index. Nothing here retrieves or ranks: that is
``index``'s job.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field

from index import Answer, Context, IndexLoadError, IndexStats, QuoteIndex, Source

log = logging.getLogger(__name__)
MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 100


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    old_build: str
    new_build: str
    seconds: float
    articles: int = 0
    passages: int = 0
    error: str | None = None


@dataclass
class Counters:
    questions: int = 0
    found: int = 0
    not_found: int = 0
    rate_limited: int = 0
    errors: int = 0
    reloads: int = 0


@dataclass
class QuoteService:
    """The current index and what the bot asks of it."""

    index: QuoteIndex
    counters: Counters = field(default_factory=Counters)
    started: float = field(default_factory=time.time)
    examples: list[str] = field(default_factory=list)
    _reloading: bool = False

    @property
    def build_id(self) -> str:
        return self.index.build_id

    async def answer(self, question: str, k: int) -> Answer:
        """Up to ``k`` quotes; raises :class:`index.QuestionError` for unusable questions."""
        index = self.index  # one index for the whole question, even if a reload swaps it
        return await asyncio.to_thread(index.answer, question, k)

    async def context(self, ref: str, radius: int = 1) -> Context | None:
        index = self.index
        return await asyncio.to_thread(index.context, ref, radius)

    def articles(self) -> list[Source]:
        return self.index.articles()

    def stats(self) -> IndexStats:
        return self.index.stats()

    async def refresh_examples(self) -> list[str]:
        """Example questions for /help, drawn from the articles and checked to find quotes."""
        index = self.index
        self.examples = await asyncio.to_thread(example_questions, index)
        return self.examples

    async def reload(self) -> ReloadResult:
        """Load the index again from disk and swap it in; the old one serves until then."""
        old = self.index
        if self._reloading:
            return ReloadResult(False, old.build_id, old.build_id, 0.0, error="a reload is running")
        self._reloading = True
        started = time.perf_counter()
        try:
            new = await asyncio.to_thread(old.reload)
        except IndexLoadError as err:
            log.error("reload failed, still serving build %s: %s", old.build_id, err)
            return ReloadResult(
                False, old.build_id, old.build_id, time.perf_counter() - started, error=str(err)
            )
        finally:
            self._reloading = False
        self.index = new
        self.counters.reloads += 1
        await self.refresh_examples()
        stats = new.stats()
        seconds = time.perf_counter() - started
        log.info(
            "index reloaded: build %s -> %s (%d articles, %d passages) in %.2fs",
            old.build_id,
            new.build_id,
            stats.articles,
            stats.passages,
            seconds,
        )
        return ReloadResult(
            True, old.build_id, new.build_id, seconds, stats.articles, stats.passages
        )


def _topic(title: str) -> str | None:
    """A short, clean topic from an article title; None if the title is not usable."""
    text = " ".join(title.split()).rstrip("….").strip()
    if len(text) > MAX_EXAMPLE_CHARS:
        cut = text[:MAX_EXAMPLE_CHARS].rsplit(" ", 1)[0]
        text = cut.rstrip(",;:-—– ")
    if len(text) < 12 or not re.search(r"[A-Za-z]{3}", text):
        return None
    return text


def example_questions(index: QuoteIndex, limit: int = MAX_EXAMPLES) -> list[str]:
    """Up to ``limit`` article topics (from titles) that the index answers with quotes.

    Drawn from the corpus, never made up: a title is offered only if asking it finds
    a quote. Articles with a real title come before those whose title is a cut first line.
    """
    titles = [s.title for s in index.articles()]
    titles.sort(key=lambda t: t.endswith("…"))
    out: list[str] = []
    for title in titles:
        topic = _topic(title)
        if topic is None or topic in out:
            continue
        try:
            if index.answer(topic, 1).found:
                out.append(topic)
        except Exception as err:  # an example is a nicety; never fail start-up over one
            log.warning("example %r not usable: %s", topic, err)
        if len(out) >= limit:
            break
    return out

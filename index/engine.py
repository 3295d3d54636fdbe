"""The index as the bot and the CLI use it: load once, then answer questions.

:class:`QuoteIndex` joins the stored index, the embedding model, the searcher
and the quote chooser behind three calls: :meth:`answer`, :meth:`context`
and :meth:`articles`. It is safe to call from several threads at once (the
bot answers off its event loop): everything it holds is read-only after load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from index.answerability import Answerability
from index.answers import Answer, Context, Source
from index.backend import open_store
from index.embeddings import Embedder, ModelLoadError, canonical_model_name
from index.highlight import Highlighter
from index.lexical import TOKENIZER
from index.quotes import compose_answer, source_of
from index.ranker import ModelFileError, Ranker
from index.search import Searcher
from index.store import REBUILD_HINT, IndexLoadError, index_size_bytes, read_manifest

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 1000


class QuestionError(ValueError):
    """A question that cannot be searched (empty, too long); the message is for the user."""


@dataclass(frozen=True)
class IndexStats:
    articles: int
    passages: int
    sentences: int
    model: str
    dimension: int
    size_bytes: int
    built_at: str
    build_seconds: float
    build_id: str
    skipped: int


class QuoteIndex:
    """A loaded index that answers questions with verbatim quotes."""

    def __init__(
        self,
        index_dir: Path,
        model: str | None = None,
        *,
        embedder: Embedder | None = None,
        min_confidence: float | None = None,
        ranker: Ranker | None = None,
        answerability: Answerability | None = None,
        highlighter: Highlighter | None = None,
    ) -> None:
        """Load the index in ``index_dir``.

        ``model`` is the model the caller expects (from settings); when it is
        not the model the index was built with, loading fails with a message
        that says to rebuild, because vectors of two models cannot be compared.
        ``min_confidence`` overrides the answerability model's "not found" line
        (a probability); ``ranker``, ``answerability`` and ``highlighter`` replace
        the shipped models (training and evaluation use this).
        """
        self.index_dir = index_dir
        self._model = model
        self._min_confidence = min_confidence
        self.stored = open_store(index_dir)
        manifest = self.stored.manifest
        if model and canonical_model_name(model) != manifest.model:
            raise IndexLoadError(
                f"index at {index_dir} was built with model {manifest.model!r}, "
                f"but {canonical_model_name(model)!r} is configured; {REBUILD_HINT}"
            )
        if manifest.tokenizer != TOKENIZER:
            raise IndexLoadError(
                f"index at {index_dir} splits words the way of an older quotebot "
                f"({manifest.tokenizer}, this one uses {TOKENIZER}); {REBUILD_HINT}"
            )
        if embedder is None:
            try:
                embedder = Embedder(manifest.model)
            except ModelLoadError as err:
                raise IndexLoadError(f"{err}; {REBUILD_HINT} --model NAME") from err
        if embedder.name != manifest.model or embedder.dimension != manifest.dimension:
            raise IndexLoadError(
                f"index at {index_dir} was built with model {manifest.model!r} "
                f"({manifest.dimension} dimensions), the loaded model is {embedder.name!r} "
                f"({embedder.dimension} dimensions); {REBUILD_HINT}"
            )
        self.embedder = embedder
        try:
            self.searcher = Searcher(
                self.stored,
                embedder,
                ranker or Ranker.load(),
                answerability or Answerability.load(),
                highlighter or Highlighter.load(),
            )
        except ModelFileError as err:
            raise IndexLoadError(str(err)) from err
        self.min_confidence = (
            self.searcher.answerability.threshold  # type: ignore[union-attr]
            if min_confidence is None
            else min_confidence
        )
        self._sources: list[Source] | None = None
        page_in = getattr(self.stored, "page_in", None)
        if page_in is not None:
            page_in()
        self._warm_up()

    def _warm_up(self) -> None:
        """Search once at load, so that the first user's question finds the model's
        first run done, the stopword list imported and the vector graph's upper layers
        in memory: at a million passages the first answer after a load took 110 ms
        without this, later ones 15-25 ms (scale benchmark, README). The model is run
        at every question length first (:meth:`Embedder.warm_up`), once per model."""
        self.embedder.warm_up()
        if len(self.stored.passages):
            words = self.stored.passages[0].text.split()[:8]
            self.searcher.search(" ".join(words) or "news", limit=1)

    @property
    def build_id(self) -> str:
        return self.stored.manifest.build_id

    def reload(self) -> QuoteIndex:
        """The same index directory loaded again (a newer build, if one was made since).

        The embedding model already in memory is shared when the new build was made
        with it, so a reload costs the index files, not another model load.
        """
        same_model = read_manifest(self.index_dir).model == self.embedder.name
        return QuoteIndex(
            self.index_dir,
            self._model,
            embedder=self.embedder if same_model else None,
            min_confidence=self._min_confidence,
            ranker=self.searcher.ranker,
            answerability=self.searcher.answerability,
            highlighter=self.searcher.highlighter,
        )

    def answer(self, question: str, k: int = 3) -> Answer:
        """Up to ``k`` verbatim quotes that answer ``question``, or ``found=False``."""
        question = check_question(question)
        hits = self.searcher.search(question, limit=max(20, 4 * k))
        return compose_answer(question, hits, self.stored, k, self.min_confidence)

    def ranked(self, question: str, k: int = 10) -> tuple[Answer, float]:
        """The ``k`` best quotes whatever their probability, and the best one's probability.

        For measuring the ranking apart from the "not found" decision: the
        answer :meth:`answer` gives is "not found" exactly when the probability
        is below :attr:`min_confidence`.
        """
        question = check_question(question)
        hits = self.searcher.search(question, limit=max(20, 4 * k))
        best = hits[0].probability if hits else 0.0
        return compose_answer(question, hits, self.stored, k, 0.0, every_hit=True), best

    def context(self, ref: str, radius: int = 1) -> Context | None:
        """The quoted passage and up to ``radius`` passages either side, in its article.

        Returns ``None`` when ``ref`` names no passage of this index (its article
        changed or was removed since the quote was given).
        """
        key, _, start = ref.rpartition(":")
        i = self.stored.find_passage(key, int(start)) if start.isdigit() else None
        if i is None:
            return None
        passage = self.stored.passages[i]
        siblings = list(self.stored.passages_of(passage.article))
        at = siblings.index(i)
        same = siblings[max(0, at - radius) : at + radius + 1]
        return Context(
            source=source_of(self.stored.articles[passage.article]),
            passages=tuple(self.stored.passages[j].text for j in same),
            focus=same.index(i),
            ref=ref,
        )

    def articles(self) -> list[Source]:
        """Every indexed article's source, in corpus order (read once, then kept)."""
        if self._sources is None:
            stored = self.stored
            self._sources = [
                source_of(stored.article(a, body=False)) for a in range(len(stored.articles))
            ]
        return list(self._sources)

    def stats(self) -> IndexStats:
        m = self.stored.manifest
        return IndexStats(
            articles=m.articles,
            passages=m.passages,
            sentences=m.sentences,
            model=m.model,
            dimension=m.dimension,
            size_bytes=index_size_bytes(self.index_dir),
            built_at=m.built_at,
            build_seconds=m.build_seconds,
            build_id=m.build_id,
            skipped=len(m.skipped),
        )


def check_question(question: str) -> str:
    """The question, trimmed; :class:`QuestionError` if it is empty or too long."""
    question = " ".join(question.split())
    if not question:
        raise QuestionError("The question is empty. Ask something about the articles.")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is too long ({len(question)} characters); "
            f"keep it under {MAX_QUESTION_CHARS}."
        )
    return question

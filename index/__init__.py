"""quotebot's article index: corpus → passages → vectors → hits → verbatim quotes.

The bot and the CLI use :class:`QuoteIndex` (load and answer) and
:func:`build_index` (build or rebuild); the rest is how those work.
"""

from index.answers import Answer, Context, Quote, Source
from index.engine import IndexStats, QuestionError, QuoteIndex
from index.store import IndexLoadError

__all__ = [
    "Answer",
    "Context",
    "IndexLoadError",
    "IndexStats",
    "QuestionError",
    "Quote",
    "QuoteIndex",
    "Source",
]

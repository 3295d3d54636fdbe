"""quotebot's article index: corpus → passages → vectors → hits → verbatim quotes.

The bot and the CLI use :class:`QuoteIndex` (load and answer) and
:class:`IndexSettings` (where the corpus, the index and the model are, from the
environment); ``python -m index build`` builds. The rest is how those work, and
``bot/`` imports nothing but what is listed here.
"""

from index.answers import Answer, Context, Quote, Source
from index.engine import IndexStats, QuestionError, QuoteIndex
from index.settings import IndexSettings, SettingsError, env_var
from index.store import IndexLoadError

__all__ = [
    "Answer",
    "Context",
    "IndexLoadError",
    "IndexSettings",
    "IndexStats",
    "QuestionError",
    "Quote",
    "QuoteIndex",
    "SettingsError",
    "Source",
    "env_var",
]

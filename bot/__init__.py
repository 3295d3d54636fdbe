"""quotebot's Telegram bot: presents what :mod:`index` finds, as verbatim quotes.

Entry point ``python -m bot`` (:mod:`bot.__main__`). The bot holds no retrieval
logic: it asks :class:`index.QuoteIndex` and formats the answer for Telegram (or
for the terminal chat when no token is set).
"""

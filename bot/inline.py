"""Inline mode: ``@botname question`` in any chat offers the quotes to pick from.

Each result is one quote as the message it would send (the same HTML as in a chat,
within one message), titled with its answering sentence and described by its
source. At most 50 results, as Telegram allows; an empty query offers none, only a
button to the bot's help.
"""

from __future__ import annotations

import logging

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Update,
)
from telegram.constants import InlineQueryLimit, ParseMode
from telegram.ext import ContextTypes

from bot.deps import deps
from bot.formatting import Block, Message, Run, pack, quote_group, source_block
from bot.sending import NO_PREVIEW
from index import QuestionError, Quote

log = logging.getLogger(__name__)
MAX_RESULTS = InlineQueryLimit.RESULTS  # 50
TITLE_CHARS = 100
DESCRIPTION_CHARS = 200
HELP_BUTTON = InlineQueryResultsButton(text="How to ask quotebot", start_parameter="help")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quote_message(quote: Quote) -> Message:
    """The quote as a single message: the whole passage if it fits, else its highlights."""
    messages = pack([quote_group(quote)])
    if len(messages) == 1:
        return messages[0]
    runs: list[Run] = []
    for i, sentence in enumerate(quote.highlights or (quote.text,)):
        if i:
            runs.append(Run(" … "))
        runs.append(Run(sentence, bold=True))
    short = (Block(tuple(runs), quote=True), *[source_block(s) for s in quote.sources])
    return pack([short])[0]


def inline_result(number: int, quote: Quote) -> InlineQueryResultArticle:
    title = quote.highlights[0] if quote.highlights else quote.text
    return InlineQueryResultArticle(
        id=f"{number}-{quote.ref}"[:64],
        title=_clip(title, TITLE_CHARS),
        description=_clip("; ".join(s.line() for s in quote.sources), DESCRIPTION_CHARS),
        input_message_content=InputTextMessageContent(
            quote_message(quote).html(),
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
        ),
    )


async def on_inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.inline_query
    if query is None:
        return
    d = deps(context)
    text = query.query.strip()
    if not text:
        await query.answer([], cache_time=300, button=HELP_BUTTON)
        return
    wait = d.limiter.hit(query.from_user.id)
    if wait:
        d.service.counters.rate_limited += 1
        log.info("rate limited inline user=%s wait=%.0fs", query.from_user.id, wait)
        await query.answer(
            [],
            cache_time=0,
            is_personal=True,
            button=InlineQueryResultsButton(
                text=f"Too many questions — wait {max(1, round(wait))} s",
                start_parameter="help",
            ),
        )
        return
    try:
        answer = await d.service.answer(text, min(d.settings.inline_results, MAX_RESULTS))
    except QuestionError:
        await query.answer([], cache_time=0, button=HELP_BUTTON)
        return
    d.service.counters.questions += 1
    log.info(
        "inline question user=%s chars=%d found=%s quotes=%d",
        query.from_user.id,
        len(text),
        answer.found,
        len(answer.quotes),
    )
    if not answer.found:
        d.service.counters.not_found += 1
        await query.answer(
            [],
            cache_time=30,
            button=InlineQueryResultsButton(
                text="No quote found — how to ask", start_parameter="help"
            ),
        )
        return
    d.service.counters.found += 1
    results = [inline_result(i, q) for i, q in enumerate(answer.quotes[:MAX_RESULTS])]
    await query.answer(results, cache_time=30)

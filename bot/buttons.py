"""The buttons under an answer: More (next quotes) and Context (paragraphs around one).

A press is always answered (``answerCallbackQuery``), so the user's client stops
spinning, and never fails: a button this process does not know — made before a
restart, or garbled — says it expired; a More button from before an index reload
asks its question again on the new index; a Context button whose passage is gone
(its article changed) says so.
"""

from __future__ import annotations

import contextlib
import logging

from telegram import InaccessibleMessage, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.deps import deps
from bot.formatting import EXPIRED_BUTTON, NO_MORE, PASSAGE_GONE, context_groups, pack
from bot.keyboards import (
    ContextRequest,
    MoreRequest,
    decode,
    has_more,
    without_more,
)
from bot.questions import send_page
from bot.sending import send_messages

log = logging.getLogger(__name__)
ANSWER_GONE = "The articles were updated and no longer answer this — please ask again."


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    request = decode(query.data)
    message = query.message
    if request is None or message is None or isinstance(message, InaccessibleMessage):
        log.info("expired or unknown button from user=%s", query.from_user.id)
        await query.answer(EXPIRED_BUTTON)
        return
    if isinstance(request, MoreRequest):
        await _more(update, context, request)
    else:
        await _context(update, context, request)


async def _more(update: Update, context: ContextTypes.DEFAULT_TYPE, request: MoreRequest) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None
    d = deps(context)
    record = d.answers.get(request.token)
    if record is None:
        log.info("More button with unknown token (bot restarted or cache evicted)")
        await query.answer(EXPIRED_BUTTON)
        return
    # The same question to the same index gives the same quotes, so paging asks again;
    # after a reload this answers from the current articles.
    answer = await d.service.answer(record.question, d.pool_size)
    if record.build_id != d.service.build_id:
        log.info("More after an index reload: asked again on build %s", d.service.build_id)
    if not answer.found:
        await query.answer(ANSWER_GONE)
        return
    if request.offset >= len(answer.quotes):
        await query.answer(NO_MORE)
        return
    await query.answer()
    chat_id = query.message.chat.id
    # The next page comes with its own More button: drop the old one so it is not pressed twice.
    markup = getattr(query.message, "reply_markup", None)
    if has_more(markup):
        with contextlib.suppress(TelegramError):
            await query.edit_message_reply_markup(without_more(markup))
    await send_page(
        context,
        chat_id,
        answer.quotes,
        request.token,
        request.offset,
        reply_to=query.message.message_id,
    )


async def _context(
    update: Update, context: ContextTypes.DEFAULT_TYPE, request: ContextRequest
) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None
    d = deps(context)
    found = await d.service.context(request.ref, d.settings.context_radius)
    if found is None:
        log.info("Context button for a passage no longer indexed: %s", request.ref)
        await query.answer(PASSAGE_GONE)
        return
    await query.answer()
    await send_messages(
        context.bot,
        query.message.chat.id,
        pack(context_groups(found)),
        reply_to=query.message.message_id,
    )

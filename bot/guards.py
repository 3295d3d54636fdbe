"""Cross-cutting handlers: the access gate (runs before all others) and the error handler.

The gate is a :class:`~telegram.ext.TypeHandler` in group -1, as in PTB's examples:
an update from someone not allowed is refused there and stopped with
:class:`~telegram.ext.ApplicationHandlerStop`, so no other handler ever sees it.

The error handler keeps the bot running whatever happens in a handler: it logs one
line (never the token: the log filter sees to that). When Telegram could not be
reached even after the sender's retries, a journaled update is kept for another
attempt (:mod:`bot.delivery`) — the answer is late, not lost; otherwise, where a reply
was lost, it sends the user a short apology.
"""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.delivery import defer_current
from bot.deps import deps
from bot.formatting import APOLOGY, NOT_ALLOWED
from bot.sending import send_text

log = logging.getLogger(__name__)


async def gate(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let through only updates from allowed users/chats; refuse the others politely."""
    if not isinstance(update, Update):
        return
    d = deps(context)
    user_id = update.effective_user.id if update.effective_user else None
    chat_id = update.effective_chat.id if update.effective_chat else None
    if d.access.allows(user_id, chat_id):
        return
    log.info("refused update from user=%s chat=%s (not allowed)", user_id, chat_id)
    with contextlib.suppress(TelegramError):
        if update.callback_query is not None:
            await update.callback_query.answer(NOT_ALLOWED)
        elif update.inline_query is not None:
            await update.inline_query.answer([], cache_time=0, is_personal=True)
        elif (
            update.message is not None
            and update.message.chat.type == ChatType.PRIVATE
            and user_id is not None
            and d.refusals.hit(user_id) == 0
        ):
            await send_text(context.bot, update.message.chat_id, NOT_ALLOWED)
    raise ApplicationHandlerStop


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error in one line and apologise where an answer was lost; never re-raise."""
    err = context.error
    with contextlib.suppress(Exception):
        deps(context).service.counters.errors += 1
    update_id = update.update_id if isinstance(update, Update) else None
    unreachable = isinstance(err, (NetworkError, RetryAfter)) and not isinstance(err, BadRequest)
    if unreachable and err is not None and defer_current(err):
        return  # retried later from the journal (which logs it): no apology for a late answer
    if isinstance(err, (NetworkError, RetryAfter, Forbidden)):
        log.warning("update %s: Telegram error %s: %s", update_id, type(err).__name__, err)
    else:
        log.error("update %s: unexpected error", update_id, exc_info=err)
    if not isinstance(update, Update) or isinstance(err, Forbidden):
        return  # a blocked bot cannot apologise either
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(APOLOGY)
        elif update.effective_message is not None and update.effective_chat is not None:
            await send_text(
                context.bot,
                update.effective_chat.id,
                APOLOGY,
                reply_to=update.effective_message.message_id
                if update.effective_chat.type != ChatType.PRIVATE
                else None,
            )
    except TelegramError as apology_err:
        log.warning("could not apologise for update %s: %s", update_id, apology_err)

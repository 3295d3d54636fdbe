"""Getting messages to Telegram: flood limits, retries, and the plain-text fallback.

* :class:`ResilientRateLimiter` is PTB's :class:`~telegram.ext.AIORateLimiter` (which
  throttles to Telegram's flood limits and waits out ``retry_after`` on a 429) plus
  retries with backoff for network errors and 5xx answers, so a short Telegram or
  network outage delays an answer instead of losing it.
* :func:`send_messages` sends packed messages as HTML and, should Telegram still
  reject the HTML ("can't parse entities"), sends the same text as plain text. While
  a journaled update is handled it records each message Telegram accepts, and skips
  those an earlier attempt (before a crash or an outage) already delivered — see
  :mod:`bot.delivery`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram import Message as TgMessage
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import AIORateLimiter

from bot.delivery import current_outbox
from bot.formatting import Message, pack, text_groups

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Best-effort calls that are not worth delaying an answer for.
NO_NETWORK_RETRY = frozenset({"sendChatAction"})
MAX_RETRY_DELAY = 8.0


class ResilientRateLimiter(AIORateLimiter):
    """AIORateLimiter that also retries network errors and 5xx answers with backoff.

    ``BadRequest`` is a subclass of ``NetworkError`` in PTB but means the request itself
    is wrong, so it is never retried; neither are Forbidden, Conflict or InvalidToken.
    """

    def __init__(
        self, *, network_retries: int = 4, retry_delay: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.network_retries = network_retries
        self.retry_delay = retry_delay

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        retries = 0 if endpoint in NO_NETWORK_RETRY else self.network_retries
        attempt = 0
        while True:
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:
                raise
            except NetworkError as err:
                if attempt >= retries:
                    raise
                delay = min(self.retry_delay * 2**attempt, MAX_RETRY_DELAY)
                attempt += 1
                log.warning(
                    "Telegram %s failed (%s: %s); retry %d/%d in %.1fs",
                    endpoint,
                    type(err).__name__,
                    err,
                    attempt,
                    retries,
                    delay,
                )
                await asyncio.sleep(delay)


def is_entity_error(err: BadRequest) -> bool:
    return "parse entities" in str(err).lower()


async def send_messages(
    bot: Bot,
    chat_id: int,
    messages: Sequence[Message],
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None,
) -> list[TgMessage]:
    """Send ``messages`` in order; the keyboard goes under the last, the reply on the first.

    Messages that an earlier attempt at the same update already delivered are skipped.
    """
    outbox = current_outbox()
    sent = []
    for i, message in enumerate(messages):
        if outbox is not None and outbox.skip_next():
            continue
        last = i == len(messages) - 1
        reply = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None and i == 0
            else None
        )
        sent.append(await send_one(bot, chat_id, message, reply_markup if last else None, reply))
        if outbox is not None:
            outbox.accepted()
    return sent


async def send_one(
    bot: Bot,
    chat_id: int,
    message: Message,
    reply_markup: InlineKeyboardMarkup | None = None,
    reply: ReplyParameters | None = None,
) -> TgMessage:
    """One message as HTML; as plain text (same visible text) if Telegram rejects the HTML."""
    try:
        return await bot.send_message(
            chat_id,
            message.html(),
            parse_mode=ParseMode.HTML,
            reply_markup=reply_markup,
            reply_parameters=reply,
            link_preview_options=NO_PREVIEW,
        )
    except BadRequest as err:
        if not is_entity_error(err):
            raise
        log.warning("Telegram rejected the HTML of a message (%s); sending it as plain text", err)
        return await bot.send_message(
            chat_id,
            message.plain(),
            reply_markup=reply_markup,
            reply_parameters=reply,
            link_preview_options=NO_PREVIEW,
        )


async def send_text(
    bot: Bot, chat_id: int, *paragraphs: str, reply_to: int | None = None
) -> list[TgMessage]:
    """The bot's own short words (errors, notices) as one or more messages."""
    return await send_messages(bot, chat_id, pack(text_groups(*paragraphs)), reply_to=reply_to)


async def show_typing(bot: Bot, chat_id: int) -> None:
    """Show "typing…" while searching; a failure here must never cost the answer."""
    try:
        await bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as err:
        log.info("typing indicator for chat %s failed: %s", chat_id, err)

"""Questions in chats: private messages, /ask, mentions and replies in groups.

In a private chat every text message is a question. In a group the bot answers
only what is addressed to it — ``/ask``, a message that @mentions it, a reply to
one of its messages — and ignores the rest of the conversation. All paths end in
:func:`answer_question`, which asks the index (off the event loop) and sends the
quotes with their buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.deps import BotDeps, deps
from bot.formatting import (
    EMPTY_ASK,
    EMPTY_MENTION,
    NON_TEXT,
    NOT_FOUND,
    answer_groups,
    pack,
    rate_limited_text,
)
from bot.keyboards import AnswerRecord, answer_keyboard, encode_more
from bot.sending import send_messages, send_text, show_typing
from index import QuestionError, Quote

log = logging.getLogger(__name__)
TYPING_WAIT = 1.0  # bounded wait for the typing indicator before the answer goes out


def is_group(message: Message) -> bool:
    return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


def is_reply_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.id == bot_id)


def strip_mentions(message: Message, username: str | None, bot_id: int) -> tuple[str, bool]:
    """The message text without mentions of this bot, and whether there was one."""
    text = message.text or message.caption or ""
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    handle = f"@{username}".lower() if username else None
    mentioned = False
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and handle and value.lower() == handle:
            mentioned = True
        elif entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            mentioned = True  # a mention by name, for users without a @username
            text = text.replace(value, " ", 1)
    if handle and not mentioned and re.search(rf"(?<!\w){re.escape(handle)}(?!\w)", text, re.I):
        mentioned = True  # a client that sent no entities
    return without_handle(text, username), mentioned


def without_handle(text: str, username: str | None) -> str:
    """``text`` without ``@username`` (any case), whitespace tidied."""
    if username:
        text = re.sub(rf"(?<!\w)@{re.escape(username)}(?!\w)", " ", text, flags=re.I)
    return " ".join(text.split())


async def on_private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    question, _ = strip_mentions(message, context.bot.username, context.bot.id)
    await answer_question(update, context, question)


async def on_group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a group message only if it mentions the bot or replies to it."""
    message = update.effective_message
    if message is None:
        return
    question, mentioned = strip_mentions(message, context.bot.username, context.bot.id)
    if not (mentioned or is_reply_to_bot(message, context.bot.id)):
        return  # the group's own conversation
    if not question:
        d = deps(context)
        await send_text(
            context.bot,
            message.chat_id,
            EMPTY_MENTION.format(username=context.bot.username, example=d.example()),
            reply_to=message.message_id,
        )
        return
    await answer_question(update, context, question)


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/ask question`` (also ``/ask@botname question``), in any chat."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    parts = message.text.split(maxsplit=1)
    question = without_handle(parts[1] if len(parts) > 1 else "", context.bot.username)
    if not question.strip():
        d = deps(context)
        await send_text(
            context.bot,
            message.chat_id,
            EMPTY_ASK.format(example=d.example()),
            reply_to=message.message_id if is_group(message) else None,
        )
        return
    await answer_question(update, context, question)


async def on_non_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice...: say that only text is read (in groups only if addressed)."""
    message = update.effective_message
    if message is None:
        return
    if is_group(message):
        _, mentioned = strip_mentions(message, context.bot.username, context.bot.id)
        if not (mentioned or is_reply_to_bot(message, context.bot.id)):
            return
    await send_text(
        context.bot,
        message.chat_id,
        NON_TEXT.format(example=deps(context).example()),
        reply_to=message.message_id if is_group(message) else None,
    )


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    await send_text(context.bot, message.chat_id, "I don't know that command. See /help.")


async def answer_question(
    update: Update, context: ContextTypes.DEFAULT_TYPE, question: str
) -> None:
    """Search (in a thread, showing "typing"), then send the first page of quotes."""
    message = update.effective_message
    user = update.effective_user
    if message is None:
        return
    d = deps(context)
    chat_id = message.chat_id
    reply_to = message.message_id if is_group(message) else None
    user_id = user.id if user else chat_id
    wait = d.limiter.hit(user_id)
    if wait:
        d.service.counters.rate_limited += 1
        log.info("rate limited user=%s chat=%s wait=%.0fs", user_id, chat_id, wait)
        if d.limiter.should_tell(user_id, wait):
            await send_text(context.bot, chat_id, rate_limited_text(wait), reply_to=reply_to)
        return
    started = time.perf_counter()
    typing = asyncio.create_task(show_typing(context.bot, chat_id))
    try:
        answer = await d.service.answer(question, d.pool_size)
    except QuestionError as err:
        await _settle(typing)
        await send_text(context.bot, chat_id, str(err), reply_to=reply_to)
        return
    await _settle(typing)
    d.service.counters.questions += 1
    log.info(
        "question chat=%s user=%s chars=%d found=%s quotes=%d ms=%.0f",
        chat_id,
        user_id,
        len(question),
        answer.found,
        len(answer.quotes),
        (time.perf_counter() - started) * 1000,
    )
    if not answer.found:
        d.service.counters.not_found += 1
        await send_text(context.bot, chat_id, NOT_FOUND, reply_to=reply_to)
        return
    d.service.counters.found += 1
    token = d.answers.put(AnswerRecord(answer.question, d.service.build_id))
    await send_page(context, chat_id, answer.quotes, token, 0, reply_to=reply_to)


async def _settle(task: asyncio.Task[None]) -> None:
    """Let the typing indicator go out first, but never wait long for it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task, TYPING_WAIT)


async def send_page(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    all_quotes: Sequence[Quote],
    token: str,
    offset: int,
    *,
    reply_to: int | None,
) -> None:
    """Quotes ``offset``.. of an answer: numbered, with Context buttons and More if any remain."""
    d: BotDeps = deps(context)
    end = offset + d.page_size
    quotes = all_quotes[offset:end]
    numbered = len(all_quotes) > 1
    first = offset + 1 if numbered else None
    more = encode_more(token, end) if len(all_quotes) > end else None
    messages = pack(answer_groups(quotes, first))
    await send_messages(
        context.bot,
        chat_id,
        messages,
        reply_markup=answer_keyboard(quotes, first, more),
        reply_to=reply_to,
    )

"""Commands: /start, /help, /sources, /about for everyone; /reload and /stats for admins.

The texts are built by :mod:`bot.formatting` (so the terminal chat shows the same
ones) and sent as HTML like answers. ``PUBLIC_COMMANDS`` is what the bot registers
with ``setMyCommands`` at start, so Telegram clients offer them in the menu.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from telegram import BotCommand, Update
from telegram.ext import ContextTypes

from bot.deps import deps
from bot.formatting import (
    ADMINS_ONLY,
    Group,
    about_groups,
    help_groups,
    pack,
    sources_groups,
    start_groups,
    text_groups,
)
from bot.sending import send_messages, send_text

log = logging.getLogger(__name__)


class IntroGroups(Protocol):
    """:func:`start_groups` or :func:`help_groups`."""

    def __call__(
        self, examples: Sequence[str], username: str | None, *, admin: bool
    ) -> list[Group]: ...


PUBLIC_COMMANDS = (
    BotCommand("ask", "Ask a question (in groups: /ask your question)"),
    BotCommand("sources", "The articles I quote from"),
    BotCommand("help", "How to ask, with examples"),
    BotCommand("about", "What this bot is"),
    BotCommand("start", "Start here"),
)


def _user_id(update: Update) -> int | None:
    return update.effective_user.id if update.effective_user else None


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _send_intro(update, context, start_groups)


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _send_intro(update, context, help_groups)


async def _send_intro(
    update: Update, context: ContextTypes.DEFAULT_TYPE, make_groups: IntroGroups
) -> None:
    """/start and /help: examples from the corpus, and admin commands for admins."""
    message = update.effective_message
    if message is None:
        return
    d = deps(context)
    admin = d.access.is_admin(_user_id(update))
    groups = make_groups(d.service.examples, context.bot.username, admin=admin)
    await send_messages(context.bot, message.chat_id, pack(groups))


async def on_sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    articles = deps(context).service.articles()
    await send_messages(context.bot, message.chat_id, pack(sources_groups(articles)))


async def on_about(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    stats = deps(context).service.stats()
    groups = about_groups(stats.articles, stats.built_at)
    await send_messages(context.bot, message.chat_id, pack(groups))


async def _refuse_non_admin(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str) -> bool:
    """True (and a polite refusal sent) when the user is not an admin."""
    message = update.effective_message
    if deps(context).access.is_admin(_user_id(update)):
        return False
    log.info("refused /%s for non-admin user=%s", name, _user_id(update))
    if message is not None:
        await send_text(context.bot, message.chat_id, ADMINS_ONLY.format(command=f"/{name}"))
    return True


async def on_reload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Load a rebuilt index without restarting; questions keep being answered meanwhile."""
    message = update.effective_message
    if message is None or await _refuse_non_admin(update, context, "reload"):
        return
    d = deps(context)
    await send_text(
        context.bot, message.chat_id, f"Reloading the index from {d.service.index.index_dir}…"
    )
    result = await d.service.reload()
    if result.ok:
        text = (
            f"Index reloaded in {result.seconds:.1f} s: build {result.old_build} → "
            f"{result.new_build}, {result.articles} articles, {result.passages} passages."
        )
    else:
        text = f"Reload failed: {result.error}. Still answering from build {result.old_build}."
    await send_text(context.bot, message.chat_id, text)


async def on_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or await _refuse_non_admin(update, context, "stats"):
        return
    d = deps(context)
    s = d.service.stats()
    c = d.service.counters
    uptime = int(time.time() - d.service.started)
    lines = [
        f"Index build {s.build_id} (built {s.built_at} in {s.build_seconds:.1f} s)",
        f"Articles {s.articles}, passages {s.passages}, sentences {s.sentences}, "
        f"skipped files {s.skipped}",
        f"Model {s.model} ({s.dimension} dimensions), size {s.size_bytes / 1e6:.1f} MB",
        f"Mode {d.mode}; up {uptime // 3600} h {uptime % 3600 // 60} min; reloads {c.reloads}",
        f"Questions {c.questions}: found {c.found}, not found {c.not_found}; "
        f"rate-limited {c.rate_limited}; errors {c.errors}",
    ]
    await send_messages(context.bot, message.chat_id, pack(text_groups("\n".join(lines))))

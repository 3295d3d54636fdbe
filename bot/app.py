"""The Telegram application: ApplicationBuilder setup, handlers, and running it.

:func:`build_application` wires PTB the way its examples do (ApplicationBuilder,
handlers, ``post_init`` for ``setMyCommands``, an error handler). :class:`BotRunner`
runs it in the current event loop — polling by default, or behind
:class:`~bot.webhook.WebhookServer` when a webhook URL is set — so ``python -m bot``
and the tests start, run and stop the very same thing. With a journal
(``QUOTEBOT_JOURNAL``) every update is journaled before Telegram is told it arrived,
and the ones a crash left unanswered are replayed at start (:mod:`bot.delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import buttons, commands, guards, inline, questions
from bot.delivery import Delivery
from bot.deps import BotDeps, deps, install
from bot.journal import UpdateJournal
from bot.logs import add_secrets
from bot.sending import ResilientRateLimiter
from bot.service import QuoteService
from bot.settings import BotSettings
from bot.webhook import WebhookServer

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "callback_query", "inline_query"]
POLL_TIMEOUT = 10  # seconds a getUpdates long poll may wait for updates
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def register_handlers(application: AnyApplication) -> None:
    """Every handler, in PTB's order of precedence (group -1 first, then by position)."""
    application.add_handler(TypeHandler(Update, guards.gate), group=-1)

    new_message = filters.UpdateType.MESSAGE
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    for name, callback in (
        ("start", commands.on_start),
        ("help", commands.on_help),
        ("sources", commands.on_sources),
        ("about", commands.on_about),
        ("reload", commands.on_reload),
        ("stats", commands.on_stats),
        ("ask", questions.on_ask),
    ):
        application.add_handler(CommandHandler(name, callback, filters=new_message))

    text = new_message & filters.TEXT & ~filters.COMMAND
    application.add_handler(MessageHandler(text & private, questions.on_private_text))
    application.add_handler(MessageHandler(text & groups, questions.on_group_text))
    application.add_handler(
        MessageHandler(new_message & filters.COMMAND & private, questions.on_unknown_command)
    )
    application.add_handler(
        MessageHandler(
            new_message & ~filters.TEXT & ~filters.StatusUpdate.ALL, questions.on_non_text
        )
    )
    application.add_handler(CallbackQueryHandler(buttons.on_button))
    application.add_handler(InlineQueryHandler(inline.on_inline_query))
    application.add_error_handler(guards.on_error)


async def post_init(application: AnyApplication) -> None:
    """Register the command menu and say, in one log line, that the bot is ready."""
    d: BotDeps = application.bot_data["quotebot"]
    try:
        await application.bot.set_my_commands(list(commands.PUBLIC_COMMANDS))
    except TelegramError as err:
        log.warning("could not register the command menu: %s", err)
    if not d.service.examples:
        await d.service.refresh_examples()
    log.info(
        "bot @%s ready (%s mode), index build %s with %d articles",
        application.bot.username,
        d.mode,
        d.service.build_id,
        len(d.service.articles()),
    )


def bot_id(token: str) -> int:
    """The bot's numeric id: the part of its token before the colon (public, not a secret)."""
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def open_delivery(settings: BotSettings) -> Delivery | None:
    """The update journal and what wires it into PTB; None when the journal is switched off.

    Raises :class:`bot.journal.JournalError` (one line) when the file cannot be opened.
    """
    if settings.journal is None or not settings.token:
        return None
    journal = UpdateJournal(settings.journal, bot_id(settings.token))
    return Delivery(journal, settings.concurrent_updates)


def build_application(
    settings: BotSettings, service: QuoteService, delivery: Delivery | None = None
) -> AnyApplication:
    """The PTB Application for ``settings``, answering from ``service``.

    With ``delivery``, updates go through its journaled queue and update processor.
    """
    token = settings.token
    if not token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    rate_limiter = ResilientRateLimiter(
        overall_max_rate=settings.send_rate,
        group_max_rate=settings.group_send_rate,
        max_retries=settings.flood_max_retries,
        network_retries=settings.network_retries,
        retry_delay=settings.network_retry_delay,
    )
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.base_file_url)
        .rate_limiter(rate_limiter)
        .connect_timeout(10)
        .read_timeout(15)
        .write_timeout(15)
        .pool_timeout(10)
        .post_init(post_init)
    )
    if delivery is not None:
        builder = builder.update_queue(delivery.queue).concurrent_updates(delivery.processor)
    else:
        builder = builder.concurrent_updates(settings.concurrent_updates)
    if settings.webhook_url:
        builder = builder.updater(None)
    application = builder.build()
    install(application, BotDeps.from_settings(settings, service))
    register_handlers(application)
    return application


class BotRunner:
    """Start, run and stop the bot in the running event loop (polling or webhook)."""

    def __init__(self, settings: BotSettings, service: QuoteService) -> None:
        self.settings = settings
        self.service = service
        self.delivery = open_delivery(settings)
        self.application = build_application(settings, service, self.delivery)
        self.webhook: WebhookServer | None = None

    @property
    def deps(self) -> BotDeps:
        return self.application.bot_data["quotebot"]

    async def start(self) -> None:
        """Connect to Telegram (getMe), register commands, then poll or serve the webhook."""
        app = self.application
        await app.initialize()
        if app.post_init is not None:
            await app.post_init(app)
        await app.start()
        if self.delivery is not None:
            replayed = self.delivery.replay(app.bot)
            if replayed:
                log.info("answering %d updates left unanswered by the last run", replayed)
        if self.settings.webhook_url:
            await self._start_webhook()
        else:
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=POLL_TIMEOUT,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
            log.info("polling %s for updates", self.settings.telegram_base_url)

    async def _start_webhook(self) -> None:
        settings = self.settings
        assert settings.webhook_url
        secret = (
            settings.webhook_secret.get_secret_value()
            if settings.webhook_secret
            else secrets.token_urlsafe(32)
        )
        add_secrets([secret])
        self.webhook = WebhookServer(
            self.application,
            self.service,
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            path=settings.webhook_path,
            secret=secret,
        )
        await self.webhook.start()
        await self.application.bot.set_webhook(
            url=settings.webhook_url,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            max_connections=min(100, settings.concurrent_updates),
        )
        log.info("webhook registered with Telegram")

    async def stop(self) -> None:
        """Stop taking updates, finish the ones in hand, close connections. Safe to repeat."""
        app = self.application
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        with contextlib.suppress(RuntimeError):
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
        if self.delivery is not None:
            self.delivery.close()  # no retries queued behind the Application's stop signal
        if app.running:
            await app.stop()
        await app.shutdown()
        if self.delivery is not None:
            self.delivery.journal.close()
        log.info("bot stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()


async def serve(settings: BotSettings, service: QuoteService) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _on_signal, sig, stop)
    try:
        await BotRunner(settings, service).run_until(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s, shutting down", sig.name)
    stop.set()


__all__ = ["ALLOWED_UPDATES", "BotRunner", "build_application", "deps", "serve"]

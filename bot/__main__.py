"""``python -m bot``: the Telegram bot, or a terminal chat when no token is set.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT, end of input), 1 when the index
or the update journal cannot be opened or Telegram refuses the bot, 2 for invalid
settings. Problems are reported in one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from telegram.error import Conflict, InvalidToken, NetworkError

from bot.journal import JournalError
from bot.logs import configure_logging
from bot.service import QuoteService, example_questions
from bot.settings import BotSettings, settings_table
from index import IndexLoadError, QuoteIndex, SettingsError

log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="quotebot: answers questions about news articles by quoting them. "
        "With TELEGRAM_BOT_TOKEN set it runs the Telegram bot (polling, or webhook when "
        "QUOTEBOT_WEBHOOK_URL is set); without it, a chat in the terminal.",
    )
    parser.add_argument(
        "--settings", action="store_true", help="print every setting as a Markdown table and exit"
    )
    parser.add_argument(
        "--terminal", action="store_true", help="chat in the terminal even if a token is set"
    )
    return parser


def _load_index(settings: BotSettings) -> QuoteIndex:
    return QuoteIndex(
        settings.index_dir, settings.model_for_index(), min_confidence=settings.min_confidence
    )


def run_terminal(settings: BotSettings) -> int:
    from bot.terminal import run_chat

    print(f"Loading the index from {settings.index_dir}…", file=sys.stderr, flush=True)
    try:
        index = _load_index(settings)
    except IndexLoadError as err:
        print(f"quotebot: cannot load the index: {err}", file=sys.stderr)
        return 1
    return run_chat(
        index,
        page_size=settings.top_k,
        context_radius=settings.context_radius,
        examples=example_questions(index),
    )


def run_bot(settings: BotSettings) -> int:
    from bot.app import serve

    log.info("loading the index from %s", settings.index_dir)
    try:
        index = _load_index(settings)
    except IndexLoadError as err:
        log.error("cannot load the index: %s", err)
        return 1
    service = QuoteService(index)
    try:
        asyncio.run(serve(settings, service))
    except JournalError as err:
        log.error("%s; set QUOTEBOT_JOURNAL to a writable file (empty: no journal)", err)
        return 1
    except InvalidToken:
        # Not the exception's text: PTB puts the token itself into it.
        log.error("Telegram refused the bot token; check TELEGRAM_BOT_TOKEN")
        return 1
    except Conflict as err:
        log.error("Telegram reports a conflict (another instance with this token?): %s", err)
        return 1
    except NetworkError as err:
        log.error("cannot reach Telegram at %s: %s", settings.telegram_base_url, err)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.settings:
        print(settings_table())
        return 0
    try:
        settings = BotSettings.load()
    except SettingsError as err:
        print(f"quotebot: {err}", file=sys.stderr)
        return 2
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    terminal = not settings.token or args.terminal
    # The terminal chat is for people: only warnings, unless a level was asked for.
    quiet = terminal and "log_level" not in settings.model_fields_set
    # The bot logs to stdout (a container's log); the terminal chat keeps stdout for
    # the conversation and sends its few log lines to stderr.
    configure_logging(
        "WARNING" if quiet else settings.log_level,
        [settings.token, secret],
        stream=sys.stderr if terminal else sys.stdout,
    )
    logging.captureWarnings(True)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if terminal:
        return run_terminal(settings)
    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())

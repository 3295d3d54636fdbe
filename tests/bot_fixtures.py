"""Helpers for the bot's tests: run the real bot against the fake Telegram server.

The bot runs for real — a real PTB Application doing real HTTP to the fake Bot API on
127.0.0.1, answering from a real index — in the test's own event loop. The index and
the embedding model come from the session fixtures in ``tests/conftest.py``
(``embedder``, ``seed_index_dir``, ``quote_index``), so the model loads once per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotRunner
from bot.service import QuoteService
from bot.settings import BotSettings
from index import QuoteIndex
from index.build import build_index
from index.embeddings import Embedder
from tests.fake_telegram import Call, FakeTelegram, parse_html, utf16_len

ROOT = Path(__file__).resolve().parent.parent
REPLY_TIMEOUT = 15.0  # generous for a loaded CI machine; a healthy reply takes < 1 s
START_TIMEOUT = 20.0
BOT_USERNAME = "quote_test_bot"
VOTES_QUESTION = "how many votes did the 63rd resolution get?"
VOTES_TEXT = "Adopted with 85 votes in favor"
# A question three passages answer (the 1988 massacre's toll, as three articles give
# it), for what pages through quotes: the flagship gets one quote.
MANY_QUESTION = "How many political prisoners were killed in the 1988 massacre?"
OFF_TOPIC = "Who painted the Mona Lisa?"


def bot_env(**values: str) -> dict[str, str]:
    """The environment for a ``python -m bot`` subprocess: this one without QUOTEBOT_/TELEGRAM_
    variables, offline, unbuffered, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTEBOT_", "TELEGRAM_"))}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, **values)
    return env


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide QUOTEBOT_/TELEGRAM_ variables (for one test) so a shell cannot change it."""
    for key in list(os.environ):
        if key.startswith(("QUOTEBOT_", "TELEGRAM_")):
            monkeypatch.delenv(key)


def make_settings(
    server: FakeTelegram, index_dir: Path, journal: Path | None = None, **overrides: Any
) -> BotSettings:
    """Settings pointing the bot at ``server``; retries kept short so failures show fast.

    ``journal`` is the update journal's file (None: no journal). Each fake server numbers
    its updates from the same start, so tests must never share a journal.
    """
    values: dict[str, Any] = {
        "telegram_bot_token": server.token,
        "telegram_base_url": server.base_url,
        "index_dir": index_dir,
        "network_retry_delay": 0.2,
        "rate_limit_per_minute": 0,
        "log_level": "DEBUG",
        "journal": journal,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    server: FakeTelegram, index: QuoteIndex, index_dir: Path | None = None, **overrides: Any
) -> AsyncIterator[BotRunner]:
    """The real bot, started against ``server`` (polling unless a webhook URL is given).

    It keeps an update journal in a fresh temporary folder unless ``journal`` is given
    (a path to share between two runs, or None for none).
    """
    directory = index_dir or index.index_dir
    with tempfile.TemporaryDirectory(prefix="quotebot-journal-") as scratch:
        overrides.setdefault("journal", Path(scratch) / "journal.sqlite3")
        settings = make_settings(server, directory, **overrides)
        service = QuoteService(index)
        runner = BotRunner(settings, service)
        try:
            await asyncio.wait_for(runner.start(), START_TIMEOUT)
            yield runner
        finally:
            await asyncio.wait_for(runner.stop(), START_TIMEOUT)


async def ask(server: FakeTelegram, text: str, **kwargs: Any) -> Call:
    """Send ``text`` as a user and wait (bounded) for the bot's first reply to it."""
    update = server.user_message(text, **kwargs)
    return await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)


async def converse(server: FakeTelegram, text: str, **kwargs: Any) -> list[Call]:
    """Send ``text``; return every message the bot sent to that chat once it went quiet."""
    mark = server.mark()
    update = server.user_message(text, **kwargs)
    await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
    await server.wait_idle(quiet=0.4, timeout=REPLY_TIMEOUT)
    return sent_since(server, mark, update["message"]["chat"]["id"])


def sent_since(server: FakeTelegram, mark: int, chat_id: int) -> list[Call]:
    """Successful sendMessage calls to ``chat_id`` recorded at or after ``mark``."""
    return [
        c
        for c in server.calls("sendMessage", ok=True)
        if c.index >= mark and c.result["chat"]["id"] == chat_id
    ]


def answers_by_question(server: FakeTelegram) -> Counter[tuple[int, int]]:
    """How many accepted messages replied to each (chat id, message id): in groups the bot
    replies to the question it answers, so this counts answers per question."""
    counts: Counter[tuple[int, int]] = Counter()
    for call in server.calls("sendMessage", ok=True):
        replied = call.result.get("reply_to_message")
        if replied:
            counts[(call.result["chat"]["id"], replied["message_id"])] += 1
    return counts


def visible(call: Call) -> str:
    return call.result["text"]


def entity_types(call: Call) -> list[str]:
    return [e["type"] for e in call.result.get("entities", [])]


def callback_datas(call: Call) -> list[str]:
    markup = call.result.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def check_message_rules(call: Call) -> None:
    """What Telegram demands of every message, checked again on what the bot sent."""
    text = call.params["text"]
    if call.params.get("parse_mode") == "HTML":
        shown, entities = parse_html(text)
    else:
        shown, entities = text, []
    assert utf16_len(shown) <= 4096
    assert len(entities) <= 100
    for data in callback_datas(call):
        assert 1 <= len(data.encode()) <= 64


def build_custom_index(
    corpus: Path, index_dir: Path, embedder: Embedder, min_confidence: float | None = None
) -> QuoteIndex:
    """Build ``corpus`` for real (FAISS + BM25 on disk) with the shared model, and load it."""
    build_index(corpus, index_dir, embedder=embedder, progress=False)
    return QuoteIndex(index_dir, embedder=embedder, min_confidence=min_confidence)


def copy_index(source: Path, target: Path) -> Path:
    """A private copy of an index directory (its ``current`` link is relative)."""
    shutil.copytree(source, target, symlinks=True)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Pytest fixtures for the fake Telegram Bot API (import these from tests/conftest.py).

Kept out of conftest.py so the fake can be reused without dragging in the bot's own fixtures:
``from tests.conftest_telegram import fake_telegram, fake_telegram_bot  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import telegram

try:  # works whether or not tests/ is a package
    from tests.fake_telegram import DEFAULT_TOKEN, FakeTelegram
except ImportError:  # pragma: no cover - depends on how pytest put tests/ on sys.path
    from fake_telegram import DEFAULT_TOKEN, FakeTelegram  # type: ignore[no-redef]

FAKE_TELEGRAM_TOKEN = DEFAULT_TOKEN  # "123456:TEST-TOKEN"

__all__ = ["FAKE_TELEGRAM_TOKEN", "fake_telegram", "fake_telegram_bot"]


@pytest_asyncio.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A started FakeTelegram (token FAKE_TELEGRAM_TOKEN) on a free loopback port."""
    async with FakeTelegram(token=FAKE_TELEGRAM_TOKEN) as server:
        yield server


@pytest_asyncio.fixture
async def fake_telegram_bot(fake_telegram: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    """An initialized ``telegram.Bot`` pointed at ``fake_telegram``, for low-level tests."""
    bot = telegram.Bot(
        FAKE_TELEGRAM_TOKEN,
        base_url=fake_telegram.base_url,
        base_file_url=fake_telegram.base_file_url,
    )
    async with bot:
        yield bot

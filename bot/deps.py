"""What every handler needs, kept in ``application.bot_data`` under one key.

PTB hands handlers a context, not constructor arguments; storing one typed object
there (instead of many loose dict keys) keeps the handlers' dependencies explicit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram.ext import Application, ContextTypes

from bot.access import Access
from bot.keyboards import AnswerCache
from bot.ratelimit import SlidingWindowLimiter
from bot.service import QuoteService
from bot.settings import BotSettings

DEPS_KEY = "quotebot"
MAX_POOL = 50  # the index gives at most 50 quotes per question


@dataclass
class BotDeps:
    settings: BotSettings
    service: QuoteService
    access: Access
    limiter: SlidingWindowLimiter
    refusals: SlidingWindowLimiter = field(
        default_factory=lambda: SlidingWindowLimiter(limit=1, window=60.0)
    )
    answers: AnswerCache = field(default_factory=AnswerCache)
    mode: str = "polling"

    @property
    def page_size(self) -> int:
        """Quotes per answer message (QUOTEBOT_TOP_K)."""
        return self.settings.top_k

    @property
    def pool_size(self) -> int:
        """Quotes fetched per question, so More can page through them without searching again."""
        return min(MAX_POOL, max(10, 4 * self.page_size))

    def example(self) -> str:
        return self.service.examples[0] if self.service.examples else "your question"

    @classmethod
    def from_settings(cls, settings: BotSettings, service: QuoteService) -> BotDeps:
        return cls(
            settings=settings,
            service=service,
            access=Access(settings.allowed_chats, settings.allowed_users, settings.admins),
            limiter=SlidingWindowLimiter(settings.rate_limit_per_minute, 60.0),
            mode="webhook" if settings.webhook_url else "polling",
        )


def deps(context: ContextTypes.DEFAULT_TYPE) -> BotDeps:
    return context.bot_data[DEPS_KEY]


def install(application: Application[Any, Any, Any, Any, Any, Any], bot_deps: BotDeps) -> None:
    application.bot_data[DEPS_KEY] = bot_deps

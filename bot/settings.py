"""The bot's settings, from environment variables and a ``.env`` file (pydantic-settings).

The bot extends :class:`index.settings.IndexSettings`, so ``python -m index`` and
``python -m bot`` read the same ``QUOTEBOT_INDEX_DIR`` / ``QUOTEBOT_MODEL`` and can
never disagree about which index they use. Telegram's own variables keep their
conventional ``TELEGRAM_`` names.

``python -m bot --settings`` prints :func:`settings_table`, the Markdown table of
every variable, generated from the fields below so the README cannot drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import NoDecode, SettingsConfigDict

from index import IndexSettings, env_var

TELEGRAM_BASE_URL = "https://api.telegram.org/bot"

IdSet = Annotated[frozenset[int], NoDecode]


class BotSettings(IndexSettings):
    """Everything ``python -m bot`` can be told; see :func:`settings_table`."""

    model_config = SettingsConfigDict(
        env_prefix="QUOTEBOT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    telegram_bot_token: SecretStr | None = Field(
        None,
        validation_alias="TELEGRAM_BOT_TOKEN",
        description="Bot token from @BotFather. Unset: chat in the terminal instead.",
    )
    telegram_base_url: str = Field(
        TELEGRAM_BASE_URL,
        validation_alias="TELEGRAM_BASE_URL",
        description="Bot API base URL; the token and method are appended "
        "(e.g. `http://127.0.0.1:8081/bot` for a local Bot API server).",
    )
    allowed_chats: IdSet = Field(
        frozenset(),
        description="Comma-separated chat ids that may use the bot. "
        "Empty (and no allowed users): open to all.",
    )
    allowed_users: IdSet = Field(
        frozenset(),
        description="Comma-separated user ids that may use the bot anywhere. "
        "Empty (and no allowed chats): open to all.",
    )
    admins: IdSet = Field(
        frozenset(), description="Comma-separated user ids allowed /reload and /stats."
    )
    rate_limit_per_minute: int = Field(
        10, ge=0, description="Questions one user may ask per minute (0: no limit)."
    )
    flood_max_retries: int = Field(
        3, ge=0, description="Retries of a Telegram request answered 429 (after `retry_after`)."
    )
    network_retries: int = Field(
        4, ge=0, description="Retries of a Telegram request that failed with a network error/5xx."
    )
    network_retry_delay: float = Field(
        0.5, gt=0, description="First delay (s) before a network retry; doubles each time."
    )
    concurrent_updates: int = Field(
        32, ge=1, description="Updates handled at once (one slow question never stalls others)."
    )
    send_rate: float = Field(
        30,
        ge=0,
        description="Messages per second the bot sends at most, over all chats "
        "(Telegram's limit is about 30; 0: no limit).",
    )
    group_send_rate: float = Field(
        20,
        ge=0,
        description="Messages per minute the bot sends at most to one group "
        "(Telegram's limit is 20; 0: no limit).",
    )
    journal: Path | None = Field(
        Path("var/journal.sqlite3"),
        description="SQLite file of received updates, so questions in flight survive a crash "
        "and are answered after a restart. Empty: no journal (a crash loses them).",
    )
    context_radius: int = Field(
        1, ge=1, le=5, description="Paragraphs shown either side of a quote by the Context button."
    )
    inline_results: int = Field(
        10, ge=1, le=50, description="Quotes offered in inline mode (Telegram allows 50)."
    )
    webhook_url: str | None = Field(
        None,
        description="Public HTTPS URL Telegram posts updates to. Set: webhook mode; "
        "unset: polling.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token "
        "(A-Z a-z 0-9 _ -). Unset: a random one per start.",
    )
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook server binds.")
    webhook_port: int = Field(8080, ge=1, le=65535, description="Port the webhook server binds.")
    log_level: str = Field("INFO", description="Logging level (DEBUG, INFO, WARNING, ...).")

    @field_validator("allowed_chats", "allowed_users", "admins", mode="before")
    @classmethod
    def _parse_ids(cls, value: Any) -> Any:
        """Accept ``"1, -1002"`` as well as lists: environment variables are plain strings."""
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(p) for p in parts if p)
            except ValueError as err:
                raise ValueError("expects comma-separated numeric ids, e.g. 12345,-100987") from err
        return value

    @field_validator(
        "telegram_bot_token", "webhook_secret", "webhook_url", "journal", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``TELEGRAM_BOT_TOKEN=`` in a .env file means "no token", not an empty token."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("telegram_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expects an http(s) URL such as {TELEGRAM_BASE_URL}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expects DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("expects the public https URL Telegram should post to")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
            if not 1 <= len(secret) <= 256 or set(secret) - allowed:
                raise ValueError("expects 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def token(self) -> str | None:
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else None

    @property
    def base_file_url(self) -> str:
        """The file-download URL that goes with :attr:`telegram_base_url`."""
        base = self.telegram_base_url.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("bot")] + "file/bot"
        return base + "/file/bot"

    @property
    def webhook_path(self) -> str:
        """The path the webhook server answers on: the path of the public URL."""
        path = urlsplit(self.webhook_url or "").path or "/"
        return path if path.startswith("/") else "/" + path

    def model_for_index(self) -> str | None:
        """The model to insist on when loading, only if the user set one explicitly.

        Without ``QUOTEBOT_MODEL`` the index's own manifest decides, so an index
        built with ``--model X`` loads without repeating X in the bot's settings.
        """
        return self.model if "model" in self.model_fields_set else None


def env_name(name: str) -> str:
    """The environment variable that sets setting ``name``."""
    return env_var(BotSettings, name)


def _default_text(name: str, field: FieldInfo) -> str:
    default = field.default
    if default is PydanticUndefined or default is None:
        return "(unset)"
    if isinstance(default, frozenset):
        return "(empty)" if not default else ",".join(str(x) for x in sorted(default))
    return f"`{default}`"


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the bot's own, then the index's."""
    fields = BotSettings.model_fields
    shared = [name for name in fields if name in IndexSettings.model_fields]
    own = [name for name in fields if name not in IndexSettings.model_fields]
    return [
        (
            env_name(name),
            _default_text(name, fields[name]),
            fields[name].description or "",
        )
        for name in own + shared
    ]


def settings_table() -> str:
    """Every setting as a Markdown table, for ``python -m bot --settings`` and the README."""
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for var, default, description in settings_rows():
        cell = description.replace("|", "\\|")
        lines.append(f"| `{var}` | {default} | {cell} |")
    return "\n".join(lines)

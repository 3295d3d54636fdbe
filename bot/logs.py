"""Logging: one line per event, and never a secret.

PTB and httpx put the bot token into request URLs (``.../bot<TOKEN>/sendMessage``),
and tracebacks of network errors can carry those URLs too. So the httpx loggers
are quietened to WARNING, and every handler gets a :class:`RedactingFilter` that
replaces the token (and the webhook secret) wherever it appears: message,
arguments and exception text. The formatter folds tracebacks onto the same line
so a log collector sees one event per line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

REDACTED = "[REDACTED]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "tornado.access")


def secret_variants(secrets: Iterable[str | None]) -> list[str]:
    """The strings to hide: each secret and, for a bot token, its part after the colon."""
    out: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        out.add(secret)
        if ":" in secret:
            tail = secret.split(":", 1)[1]
            if len(tail) >= 8:  # the numeric bot id before the colon is public
                out.add(tail)
    return sorted(out, key=len, reverse=True)  # longest first: the token before its tail


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's final text; attached to handlers so it sees every logger."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = secret_variants(secrets)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the event
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class OneLineFormatter(logging.Formatter):
    """Folds multi-line messages and tracebacks into one line (`` | `` between lines)."""

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(line for line in super().format(record).splitlines() if line.strip())


def configure_logging(
    level: str = "INFO", secrets: Iterable[str | None] = (), stream: TextIO | None = None
) -> None:
    """Log to ``stream`` (stdout by default, as a container's log), one line per event,
    with ``secrets`` redacted everywhere."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Also redact ``secrets`` (e.g. a webhook secret generated at start) from now on."""
    for handler in logging.getLogger().handlers:
        for flt in handler.filters:
            if isinstance(flt, RedactingFilter):
                flt.secrets = secret_variants([*flt.secrets, *secrets])

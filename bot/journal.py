"""A local journal of received updates (SQLite), so that no question is lost to a crash.

Telegram forgets an update once the bot has confirmed it — in polling mode by asking
``getUpdates`` with a higher offset, in webhook mode by answering the POST with 200 —
and python-telegram-bot confirms an update as soon as it sits in its in-memory queue,
long before it is answered. A bot killed in between (SIGKILL, the OOM killer, a
redeploy) loses every question in flight. So each update is written here, and
committed, *before* it reaches that queue (:mod:`bot.delivery` does the wiring); it
stays until its answer has gone out and is replayed at the next start if it has not.

Per update the journal also counts the messages of its answer that Telegram has
accepted, so a replay sends only the rest. A finished update keeps a small tombstone
(its id, no body) for :data:`KEEP_DONE_SECONDS`, so an update Telegram delivers again
— its confirmation was lost in the crash — is recognised and not answered twice.

Durability: WAL with ``synchronous=NORMAL``. A commit survives the process dying in
any way (it is in the operating system's hands once ``execute`` returns); a power cut
may lose the last commits. Every call is one short autocommitted statement on the
event loop's thread (tens of microseconds on a local disk).
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Telegram keeps unconfirmed updates for 24 hours; a duplicate can only come within that.
KEEP_DONE_SECONDS = 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    bot_id    INTEGER NOT NULL,
    update_id INTEGER NOT NULL,
    received  REAL    NOT NULL,
    body      TEXT,                       -- the update as JSON; NULL once done
    sent      INTEGER NOT NULL DEFAULT 0, -- messages of its answer Telegram accepted
    attempts  INTEGER NOT NULL DEFAULT 0, -- times handling it began (across restarts)
    done      REAL,                       -- when it was answered (or given up on)
    PRIMARY KEY (bot_id, update_id)
) WITHOUT ROWID
"""


class JournalError(Exception):
    """The journal file cannot be opened or written; the message is one line for the log."""


class Seen(enum.Enum):
    """What :meth:`UpdateJournal.record` found."""

    NEW = "new"  # journaled now
    PENDING = "pending"  # journaled earlier and not yet answered
    DONE = "done"  # answered earlier: a duplicate delivery


@dataclass(frozen=True)
class Progress:
    """An update's place in the journal (for replays and for tests)."""

    update_id: int
    sent: int
    attempts: int
    done: bool


class UpdateJournal:
    """Updates of one bot (``bot_id``) in the SQLite file at ``path``."""

    def __init__(self, path: Path, bot_id: int, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.bot_id = bot_id
        self.clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every statement below is its own transaction, committed on return.
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise JournalError(f"cannot open the update journal {path}: {err}") from err

    def _run(self, sql: str, *args: Any) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as err:
            raise JournalError(f"update journal {self.path}: {err}") from err

    def record(self, update_id: int, body: dict[str, Any]) -> Seen:
        """Journal a received update (committed on return) unless it is already known."""
        cursor = self._run(
            "INSERT OR IGNORE INTO updates (bot_id, update_id, received, body) VALUES (?, ?, ?, ?)",
            self.bot_id,
            update_id,
            self.clock(),
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        )
        if cursor.rowcount == 1:
            return Seen.NEW
        row = self._run(
            "SELECT done FROM updates WHERE bot_id = ? AND update_id = ?", self.bot_id, update_id
        ).fetchone()
        return Seen.DONE if row is not None and row[0] is not None else Seen.PENDING

    def begin(self, update_id: int) -> Progress:
        """Count one more attempt at handling the update; what earlier attempts sent."""
        row = self._run(
            "UPDATE updates SET attempts = attempts + 1 WHERE bot_id = ? AND update_id = ? "
            "RETURNING sent, attempts, done",
            self.bot_id,
            update_id,
        ).fetchone()
        if row is None:
            return Progress(update_id, 0, 1, False)
        return Progress(update_id, row[0], row[1], row[2] is not None)

    def mark_sent(self, update_id: int, count: int) -> None:
        """Telegram accepted the first ``count`` messages of the update's answer."""
        self._run(
            "UPDATE updates SET sent = max(sent, ?) WHERE bot_id = ? AND update_id = ?",
            count,
            self.bot_id,
            update_id,
        )

    def finish(self, update_id: int) -> None:
        """The update is answered (or given up on): keep only its tombstone."""
        self._run(
            "UPDATE updates SET done = ?, body = NULL WHERE bot_id = ? AND update_id = ?",
            self.clock(),
            self.bot_id,
            update_id,
        )

    def pending(self) -> list[tuple[int, dict[str, Any]]]:
        """Updates journaled but not finished, oldest first: the ones to replay."""
        rows = self._run(
            "SELECT update_id, body FROM updates WHERE bot_id = ? AND done IS NULL "
            "ORDER BY update_id",
            self.bot_id,
        ).fetchall()
        out = []
        for update_id, body in rows:
            try:
                out.append((update_id, json.loads(body)))
            except (TypeError, ValueError):  # unreadable: nothing can be replayed from it
                self.finish(update_id)
        return out

    def prune(self) -> int:
        """Forget tombstones older than :data:`KEEP_DONE_SECONDS`; how many were dropped."""
        cursor = self._run(
            "DELETE FROM updates WHERE done IS NOT NULL AND done < ?",
            self.clock() - KEEP_DONE_SECONDS,
        )
        return cursor.rowcount

    def progress(self, update_id: int) -> Progress | None:
        row = self._run(
            "SELECT sent, attempts, done FROM updates WHERE bot_id = ? AND update_id = ?",
            self.bot_id,
            update_id,
        ).fetchone()
        return None if row is None else Progress(update_id, row[0], row[1], row[2] is not None)

    def close(self) -> None:
        self._db.close()


def read_progress(path: Path) -> dict[int, Progress]:
    """Every update in the journal at ``path``, read-only (for tests and inspection)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT update_id, sent, attempts, done FROM updates").fetchall()
    finally:
        db.close()
    return {
        uid: Progress(uid, sent, attempts, done is not None) for uid, sent, attempts, done in rows
    }

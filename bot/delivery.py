"""At-least-once delivery: the update journal wired into python-telegram-bot.

PTB hands every update — fetched by its polling Updater or put there by our webhook
server — to one ``asyncio.Queue``, and in both modes Telegram is told "received"
only after that ``put`` returns: the Updater advances its ``getUpdates`` offset after
the whole batch is queued, and the webhook answers 200 after the ``put``. So the
queue's ``put`` is the one place that sees every update before it is confirmed, and
:class:`JournaledQueue` journals (and commits) each update there. No custom polling
loop is needed and both modes share the same guarantee.

:class:`JournaledProcessor` is the Application's update processor (PTB's hook around
the handling of each update). It makes the update's :class:`Outbox` current while
the handlers run — :func:`bot.sending.send_messages` consults it to skip messages an
earlier attempt already delivered and to record each one Telegram accepts — and it
marks the update done once the handlers return. An answer that could not be sent
because Telegram was unreachable (after the sender's own retries) leaves the update
pending and tries it again later; :meth:`Delivery.replay` re-queues every pending
update at start.

The exact guarantee. Every message or button press Telegram handed over is answered
at least once: across any number of crashes and restarts (an update that itself
crashes the bot is given up after :data:`MAX_ATTEMPTS` starts), and across Telegram
being unreachable for about a minute while the bot runs (with the default settings:
:data:`MAX_ATTEMPTS` attempts 2, 4, 8 and 16 s apart, each with the sender's own
retries; after the last the user gets the apology, if it can be sent, and it is
logged). Each message of an answer is sent once, except in one window: a message
Telegram accepted whose acceptance the bot did not get to record — the process died
after Telegram took the ``sendMessage`` but before its reply reached the bot and the
journal committed it (the return half of one round trip plus a local commit), or the
reply was lost on the network and the sender retried. The Bot API has no idempotency
key, so that window cannot be closed from the bot's side; a crash in it repeats that
one message. Inline queries are not journaled: Telegram takes an answer to one only
for seconds, so a replay could only fail.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, Update
from telegram.error import NetworkError
from telegram.ext import BaseUpdateProcessor

from bot.journal import JournalError, Seen, UpdateJournal

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # also stops an update that crashes the bot from crashing it forever
RETRY_DELAY = 2.0  # seconds before another attempt after Telegram was unreachable; doubles
MAX_RETRY_DELAY = 30.0
PRUNE_EVERY = 1000  # answered updates between two clean-ups of old tombstones

_outbox: ContextVar[Outbox | None] = ContextVar("quotebot_outbox", default=None)


class JournalUnavailable(NetworkError):
    """An update could not be journaled, so it must not be confirmed to Telegram.

    A :class:`~telegram.error.NetworkError` so that PTB's polling loop retries the
    batch (its offset is not advanced) instead of stopping; the webhook answers 503.
    """


def is_journaled(update: Update) -> bool:
    """Messages and button presses are; inline queries expire within seconds anyway."""
    return update.message is not None or update.callback_query is not None


@dataclass
class Outbox:
    """The messages one journaled update has sent, in order, across attempts."""

    update_id: int
    journal: UpdateJournal
    already_sent: int = 0  # accepted by Telegram in earlier attempts
    may_retry: bool = True
    position: int = 0
    deferred: BaseException | None = None

    def skip_next(self) -> bool:
        """True when the next message went out in an earlier attempt: do not send it again."""
        if self.position < self.already_sent:
            self.position += 1
            return True
        return False

    def accepted(self) -> None:
        """Telegram accepted the next message; record it before anything else happens."""
        self.position += 1
        try:
            self.journal.mark_sent(self.update_id, self.position)
        except JournalError as err:
            log.error("%s", err)


def current_outbox() -> Outbox | None:
    """The outbox of the update being handled in this task, if it is journaled."""
    return _outbox.get()


def defer_current(err: BaseException) -> bool:
    """Keep the current update for another attempt (Telegram unreachable); False if it cannot."""
    outbox = _outbox.get()
    if outbox is None or not outbox.may_retry:
        return False
    outbox.deferred = err
    return True


class JournaledQueue(asyncio.Queue[object]):
    """PTB's update queue: an update is journaled before ``put`` returns, i.e. before
    Telegram is told it was received; one already answered or already in hand is dropped."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__()
        self.delivery = delivery

    async def put(self, item: object) -> None:
        if isinstance(item, Update) and is_journaled(item) and not self.delivery.admit(item):
            return
        await super().put(item)


class JournaledProcessor(BaseUpdateProcessor):
    """Runs each update's handlers with its :class:`Outbox` current; marks it done after."""

    def __init__(self, max_concurrent_updates: int, delivery: Delivery) -> None:
        super().__init__(max_concurrent_updates)
        self.delivery = delivery

    async def initialize(self) -> None:
        """Nothing to set up: the journal is open already."""

    async def shutdown(self) -> None:
        self.delivery.close()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        d = self.delivery
        if not isinstance(update, Update) or update.update_id not in d.in_hand:
            await coroutine
            return
        uid = update.update_id
        try:
            progress = d.journal.begin(uid)
        except JournalError as err:
            log.error("%s; answering update %s without the journal", err, uid)
            d.in_hand.discard(uid)
            await coroutine
            return
        if progress.attempts > MAX_ATTEMPTS:
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            log.error("update %s: giving up after %d attempts", uid, MAX_ATTEMPTS)
            d.done(uid)
            return
        outbox = Outbox(uid, d.journal, progress.sent, may_retry=progress.attempts < MAX_ATTEMPTS)
        token = _outbox.set(outbox)
        try:
            await coroutine
        finally:
            _outbox.reset(token)
        if outbox.deferred is not None:
            d.retry_later(update, progress.attempts, outbox.deferred)
        else:
            d.done(uid)


@dataclass
class Delivery:
    """The journal, the queue and the processor that use it, replay and retries."""

    journal: UpdateJournal
    concurrent_updates: int
    in_hand: set[int] = field(default_factory=set)  # queued, being handled or waiting to retry
    closed: bool = False
    _timers: set[asyncio.TimerHandle] = field(default_factory=set)
    _finished: int = 0

    def __post_init__(self) -> None:
        self.queue = JournaledQueue(self)
        self.processor = JournaledProcessor(self.concurrent_updates, self)

    def admit(self, update: Update) -> bool:
        """Journal ``update`` (committed) if it is to be handled; False for a duplicate."""
        uid = update.update_id
        if uid in self.in_hand:
            log.info("update %s delivered again while in hand; not handled twice", uid)
            return False
        try:
            seen = self.journal.record(uid, update.to_dict())
        except JournalError as err:
            log.error("%s", err)
            raise JournalUnavailable(str(err)) from err
        if seen is Seen.DONE:
            log.info("update %s delivered again after it was answered; not answered twice", uid)
            return False
        self.in_hand.add(uid)
        return True

    def done(self, update_id: int) -> None:
        self.in_hand.discard(update_id)
        self._finished += 1
        try:
            self.journal.finish(update_id)
            if self._finished % PRUNE_EVERY == 0:  # a bot that never restarts stays small
                self.journal.prune()
        except JournalError as err:
            log.error("%s", err)

    def replay(self, bot: Bot) -> int:
        """Queue every update journaled but not answered (by an earlier run); how many."""
        try:
            pruned = self.journal.prune()
            pending = self.journal.pending()
        except JournalError as err:
            log.error("%s; nothing replayed", err)
            return 0
        if pruned:
            log.debug("journal: forgot %d answered updates older than a day", pruned)
        count = 0
        for uid, body in pending:
            if uid in self.in_hand:
                continue
            try:
                update = Update.de_json(body, bot)
            except Exception as err:  # a body this PTB cannot read: nothing to replay
                log.error("journal: update %s cannot be read back (%s); dropped", uid, err)
                self.done(uid)
                continue
            self.in_hand.add(uid)
            self.queue.put_nowait(update)
            count += 1
        return count

    def retry_later(self, update: Update, attempts: int, err: BaseException) -> None:
        """Queue ``update`` again after a delay; it stays journaled (and in hand) meanwhile."""
        if self.closed:
            return  # replayed at the next start
        delay = min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** (attempts - 1))
        log.warning(
            "update %s: answer not delivered (%s: %s); attempt %d of %d in %.0f s",
            update.update_id,
            type(err).__name__,
            err,
            attempts + 1,
            MAX_ATTEMPTS,
            delay,
        )
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def requeue() -> None:
            self._timers.discard(timer)  # type: ignore[arg-type]
            if not self.closed:
                self.queue.put_nowait(update)

        timer = loop.call_later(delay, requeue)
        self._timers.add(timer)

    def close(self) -> None:
        """Stop retrying (before the Application stops); pending updates wait for the next start."""
        self.closed = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

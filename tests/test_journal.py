"""The update journal: what it stores, and the real bot using it (in this process).

The crash itself — the bot process killed with SIGKILL mid-burst — is in
``test_crash_recovery.py``; here the journal's rules are checked one by one, and the
bot is shown to replay what a previous run left, skip what it already sent, and drop
an update Telegram delivers twice.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from bot.journal import KEEP_DONE_SECONDS, JournalError, Seen, UpdateJournal, read_progress
from tests.bot_fixtures import (
    REPLY_TIMEOUT,
    VOTES_QUESTION,
    VOTES_TEXT,
    clean_env,
    free_port,
    running_bot,
    sent_since,
    visible,
)
from tests.fake_telegram import Call, FakeTelegram


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- the store
def test_an_update_is_pending_until_finished_then_a_tombstone(tmp_path):
    clock = Clock()
    path = tmp_path / "j" / "journal.sqlite3"
    journal = UpdateJournal(path, bot_id=42, clock=clock)
    assert journal.record(7, {"update_id": 7, "message": {"text": "q"}}) is Seen.NEW
    assert journal.record(7, {"update_id": 7}) is Seen.PENDING
    progress = journal.begin(7)
    assert (progress.attempts, progress.sent, progress.done) == (1, 0, False)
    journal.mark_sent(7, 1)
    journal.mark_sent(7, 2)
    journal.mark_sent(7, 1)  # never goes back
    assert journal.begin(7).sent == 2
    assert journal.pending() == [(7, {"update_id": 7, "message": {"text": "q"}})]
    journal.finish(7)
    assert journal.pending() == []
    assert journal.record(7, {"update_id": 7}) is Seen.DONE  # a second delivery
    journal.close()

    # Committed on return: another connection (another process) sees it all.
    assert read_progress(path)[7].done
    row = sqlite3.connect(path).execute("SELECT body FROM updates").fetchone()
    assert row == (None,)  # the question's text is not kept once answered

    reopened = UpdateJournal(path, bot_id=42, clock=clock)
    assert reopened.record(7, {}) is Seen.DONE
    clock.now += KEEP_DONE_SECONDS + 1
    assert reopened.prune() == 1
    assert reopened.record(7, {}) is Seen.NEW  # ids may be reused after a long silence
    reopened.close()


def test_updates_of_another_bot_are_not_mixed_up(tmp_path):
    path = tmp_path / "journal.sqlite3"
    one, two = UpdateJournal(path, bot_id=1), UpdateJournal(path, bot_id=2)
    one.record(5, {"update_id": 5})
    one.finish(5)
    assert two.record(5, {"update_id": 5}) is Seen.NEW
    assert [uid for uid, _ in two.pending()] == [5] and one.pending() == []


def test_unwritable_journal_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(JournalError, match="cannot open the update journal") as info:
        UpdateJournal(blocker / "journal.sqlite3", bot_id=1)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the bot
def _leave_in_journal(path: Path, server: FakeTelegram, update: dict, sent: int = 0) -> None:
    """What a run killed after journaling ``update`` (and sending ``sent`` messages) leaves."""
    journal = UpdateJournal(path, bot_id=int(server.token.split(":")[0]))
    journal.record(update["update_id"], update)
    journal.begin(update["update_id"])
    if sent:
        journal.mark_sent(update["update_id"], sent)
    journal.close()


async def test_start_replays_what_the_last_run_left_unanswered(quote_index, tmp_path):
    path = tmp_path / "journal.sqlite3"
    async with FakeTelegram() as server:
        # Two questions the last run received (and confirmed to Telegram) but died on:
        # one never answered, one whose answer had gone out just before the crash.
        unanswered = server.user_message(VOTES_QUESTION, user_id=2001, queue=False)
        answered = server.user_message(VOTES_QUESTION, user_id=2002, queue=False)
        _leave_in_journal(path, server, unanswered)
        _leave_in_journal(path, server, answered, sent=1)

        async with running_bot(server, quote_index, journal=path):
            reply = await server.wait_for_reply(unanswered, timeout=REPLY_TIMEOUT)
            assert VOTES_TEXT in visible(reply)
            fresh = server.user_message(VOTES_QUESTION, user_id=2003)
            await server.wait_for_reply(fresh, timeout=REPLY_TIMEOUT)
            await server.wait_idle(quiet=0.5, timeout=REPLY_TIMEOUT)
        assert len(sent_since(server, 0, 2001)) == 1
        assert sent_since(server, 0, 2002) == []  # not sent again
        server.assert_no_violations()
    progress = read_progress(path)
    assert all(p.done for p in progress.values())
    assert progress[unanswered["update_id"]].attempts == 2  # the crashed run, then this one


async def test_webhook_update_delivered_twice_is_answered_once(quote_index, tmp_path):
    port = free_port()
    webhook = {
        "webhook_url": f"http://127.0.0.1:{port}/hook",
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
    }
    async with FakeTelegram() as server, running_bot(server, quote_index, **webhook):
        update = server.user_message(VOTES_QUESTION, user_id=2101, queue=False)
        first = await server.deliver_webhook(update)
        assert first.status == 200
        await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        # Telegram saw no 200 (say, the connection broke) and sends the update again.
        again = await server.deliver_webhook(update)
        assert again.status == 200  # taken, so Telegram stops resending it...
        await server.wait_idle(quiet=0.5, timeout=REPLY_TIMEOUT)
        assert len(sent_since(server, 0, 2101)) == 1  # ...but not answered twice


async def test_polling_update_fetched_twice_is_answered_once(quote_index, tmp_path):
    """A crash between journaling and confirming: Telegram sends the batch again."""
    path = tmp_path / "journal.sqlite3"
    async with FakeTelegram() as server:
        update = server.user_message(VOTES_QUESTION, user_id=2201)
        async with running_bot(server, quote_index, journal=path):
            await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
            await server.wait_idle(quiet=0.5, timeout=REPLY_TIMEOUT)
        # Telegram never got the confirmation (the bot died first) and sends it again.
        server.redeliver(update)
        async with running_bot(server, quote_index, journal=path):
            await server.wait_for(
                lambda c: c.method == "getUpdates" and not server.pending_update_ids,
                REPLY_TIMEOUT,
            )
            await server.wait_idle(quiet=0.5, timeout=REPLY_TIMEOUT)
        assert len(sent_since(server, 0, 2201)) == 1


async def test_update_that_cannot_be_journaled_is_not_confirmed(quote_index):
    """A journal that fails (disk full, say) must not let Telegram forget the update."""
    async with FakeTelegram() as server, running_bot(server, quote_index) as runner:
        assert runner.delivery is not None
        runner.delivery.journal.close()  # every write now fails
        update = server.user_message(VOTES_QUESTION, user_id=2301)
        uid = update["update_id"]

        def fetched(call: Call) -> bool:
            return call.method == "getUpdates" and any(
                u["update_id"] == uid for u in call.result or []
            )

        first = await server.wait_for(fetched, REPLY_TIMEOUT)
        await server.wait_for(fetched, REPLY_TIMEOUT, since=first.index + 1)  # sent again
        assert uid in server.pending_update_ids  # never confirmed
        assert sent_since(server, 0, 2301) == []


async def test_webhook_answers_503_when_the_update_cannot_be_journaled(quote_index):
    port = free_port()
    webhook = {
        "webhook_url": f"http://127.0.0.1:{port}/hook",
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
    }
    async with FakeTelegram() as server, running_bot(server, quote_index, **webhook) as runner:
        assert runner.delivery is not None
        runner.delivery.journal.close()
        delivery = await server.deliver_webhook(
            server.user_message(VOTES_QUESTION, user_id=2302, queue=False)
        )
        assert delivery.status == 503  # Telegram keeps it and tries again later


def test_bot_with_an_unwritable_journal_stops_with_one_line(seed_index_dir, tmp_path, caplog):
    from bot import __main__ as cli
    from bot.settings import BotSettings

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = BotSettings(
        _env_file=None,
        telegram_bot_token="123456:some-token-value",
        telegram_base_url="http://127.0.0.1:9/bot",  # never reached
        index_dir=seed_index_dir,
        journal=blocker / "journal.sqlite3",
    )
    with caplog.at_level(logging.ERROR):
        assert cli.run_bot(settings) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "cannot open the update journal" in line and "QUOTEBOT_JOURNAL" in line

"""No question lost to a crash: the real bot process is killed (SIGKILL) mid-burst.

``python -m bot`` runs as a subprocess against the fake Bot API (loopback only). A burst
of group questions arrives; once a few are answered, Telegram's side stops answering
``sendMessage`` (the fake holds those requests, as a slow Telegram would), and when
every answer Telegram did accept is in the journal the process is killed with SIGKILL
— no chance to clean up. By then Telegram has been told it received every question
(the fake checks the getUpdates offset / webhook 200), so it will never send them
again: only the journal has them. A second process on the same journal must answer
each remaining question, and none of the ones answered before the kill, exactly once.

Killing at that moment — no ``sendMessage`` between Telegram's acceptance and the
journal's commit — is deliberate: that window (microseconds, documented in
``bot/delivery.py``) cannot be closed from the bot's side, and a test that hit it
at random would fail at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.journal import read_progress
from tests.bot_fixtures import OFF_TOPIC, ROOT, VOTES_QUESTION, answers_by_question, bot_env
from tests.bot_fixtures import free_port as free_tcp_port
from tests.fake_telegram import FakeTelegram
from tests.figures import report

TOKEN = "123456:crash-test-token"
QUESTIONS = 60
ANSWERED_BEFORE_KILL = 5
START_TIMEOUT = 120  # the model loads in seconds; generous for a loaded 2-core machine
ANSWER_TIMEOUT = 120
TOPICS = (
    VOTES_QUESTION,
    "Who was executed in Iran?",
    "What did Maryam Rajavi welcome?",
    "What do the political prisoners declare?",
    "Which resolution did the UN General Assembly adopt?",
    OFF_TOPIC,
)


class BotProcess:
    """``python -m bot`` in a subprocess, logging to a file."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 30)

    async def stop(self) -> int:
        """SIGTERM, then the exit code (killed if it does not stop in time)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def until(condition: Any, timeout: float, what: str, server: FakeTelegram) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} within {timeout}s\n{server.dump()}")
        await asyncio.sleep(0.05)


def ask_burst(server: FakeTelegram) -> dict[int, tuple[int, int]]:
    """QUESTIONS group questions from 20 users in 3 groups: update id -> (chat, message id)."""
    asked = {}
    for i in range(QUESTIONS):
        chat_id = -1_001_000_000_100 - i % 3
        update = server.user_message(
            f"/ask {TOPICS[i % len(TOPICS)]}",
            chat_type="supergroup",
            chat_id=chat_id,
            user_id=7000 + i % 20,
        )
        asked[update["update_id"]] = (chat_id, update["message"]["message_id"])
    return asked


async def crash_and_recover(tmp_path: Path, mode: str, **env: str) -> None:
    journal = tmp_path / "journal.sqlite3"
    async with FakeTelegram(token=TOKEN) as server:
        environment = bot_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=server.base_url,
            QUOTEBOT_JOURNAL=str(journal),
            QUOTEBOT_SEND_RATE="0",  # the fake is on loopback: no flood limit to respect
            QUOTEBOT_GROUP_SEND_RATE="0",
            QUOTEBOT_LOG_LEVEL="INFO",
            **env,
        )
        first = BotProcess(tmp_path / "first.log", environment)
        second = BotProcess(tmp_path / "second.log", environment)
        try:
            await first.start()
            await asyncio.wait_for(server.bot_connected.wait(), START_TIMEOUT)
            await until(
                lambda: bool(server.calls("getUpdates" if mode == "polling" else "setWebhook")),
                START_TIMEOUT,
                "the bot did not start",
                server,
            )
            asked = ask_burst(server)
            questions = set(asked.values())

            def answered() -> set[tuple[int, int]]:
                return set(answers_by_question(server)) & questions

            await until(
                lambda: len(answered()) >= ANSWERED_BEFORE_KILL,
                ANSWER_TIMEOUT,
                "no answers",
                server,
            )
            server.hold("sendMessage")  # Telegram stops answering: the rest stay in flight
            before = answered()
            by_question = {q: uid for uid, q in asked.items()}

            def journaled_all_accepted() -> bool:
                progress = read_progress(journal)
                return all(progress[by_question[q]].sent >= 1 for q in before)

            await until(journaled_all_accepted, 30, "accepted answers not journaled", server)
            # Telegram was told it received every question: it will not send them again.
            await until(
                lambda: not set(server.pending_update_ids) & set(asked),
                30,
                "questions not confirmed to Telegram",
                server,
            )
            await first.kill()
            await until(lambda: server.holding == 0, 30, "held requests still open", server)
            in_flight = questions - before
            assert in_flight, "every question was answered before the kill"
            assert not set(server.pending_update_ids) & set(asked)
            server.release()

            await second.start()
            await until(
                lambda: answered() == questions,
                START_TIMEOUT + ANSWER_TIMEOUT,
                "not every question answered after the restart",
                server,
            )
            await server.wait_idle(quiet=1.0, timeout=60)
            assert await second.stop() == 0
        finally:
            for process in (first, second):
                if process.proc is not None and process.proc.returncode is None:
                    process.proc.kill()
                    with contextlib.suppress(Exception):
                        await process.proc.wait()
        counts = answers_by_question(server)
        twice = [q for q in questions if counts[q] > 1]
        after = {q for q in in_flight if counts[q] == 1}
        report(
            f"crash test ({mode}): {QUESTIONS} group questions, {len(before)} answered before "
            f"SIGKILL, {len(in_flight)} in flight at the kill (already confirmed to Telegram), "
            f"{len(after)} answered after the restart, {len(twice)} answered twice, "
            f"{len(questions - set(counts))} never answered"
        )
        assert not twice and after == in_flight
        assert set(counts) >= questions
        server.assert_no_violations()
    replayed = re.search(r"answering (\d+) updates left unanswered", second.log())
    assert replayed and int(replayed.group(1)) >= len(in_flight), second.log()[-2000:]
    assert "Traceback" not in first.log() + second.log()
    assert all(p.done for p in read_progress(journal).values())


async def test_questions_in_flight_survive_sigkill_polling(seed_index_dir, tmp_path):
    await crash_and_recover(tmp_path, "polling", QUOTEBOT_INDEX_DIR=str(seed_index_dir))


async def test_questions_in_flight_survive_sigkill_webhook(seed_index_dir, tmp_path):
    port = free_tcp_port()
    await crash_and_recover(
        tmp_path,
        "webhook",
        QUOTEBOT_INDEX_DIR=str(seed_index_dir),
        QUOTEBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        QUOTEBOT_WEBHOOK_LISTEN="127.0.0.1",
        QUOTEBOT_WEBHOOK_PORT=str(port),
    )

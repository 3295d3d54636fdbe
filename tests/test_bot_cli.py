"""``python -m bot`` as a user runs it: terminal chat, settings table, start-up errors,
and the whole bot process against the fake Telegram, stopped by SIGTERM.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys

from tests.bot_fixtures import (
    OFF_TOPIC,
    REPLY_TIMEOUT,
    ROOT,
    VOTES_QUESTION,
    VOTES_TEXT,
    bot_env,
    visible,
)
from tests.fake_telegram import FakeTelegram

SECRET_TOKEN = "123456:AAH-very_secret-token-value"
PROCESS_TIMEOUT = 120  # the model loads in a few seconds; a stuck process fails the test


def run_bot(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=bot_env(**env),
        timeout=PROCESS_TIMEOUT,
    )


def test_terminal_chat_without_token_quotes_from_a_pipe(seed_index_dir):
    """The newcomer's first run: no token, questions piped in, quotes printed; ends at EOF."""
    session = "\n".join([VOTES_QUESTION, "/context 1", OFF_TOPIC, "/sources", "/help", "/more"])
    done = run_bot(stdin=session, TELEGRAM_BOT_TOKEN="", QUOTEBOT_INDEX_DIR=str(seed_index_dir))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # The passage, quoted verbatim, its answering sentence marked (no terminal: no ANSI bold).
    assert "> **" + VOTES_TEXT in out
    assert "Iran Focus, 2016-12-20" in out  # its source line
    assert "Context — the quoted paragraph" in out
    assert "I found no passage" in out and "/sources" in out
    assert "Stop Executions in Iran For the Sake of Human Rights — PMOI / MEK Iran" in out
    assert "For example, ask about:" in out
    assert "Traceback" not in done.stderr
    # Piped questions are echoed after "? ": the output reads as the README's sample.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sample = readme.split("### A sample exchange", 1)[1].split("```text\n", 1)[1]
    shown = sample.split("```", 1)[0].splitlines()
    asked = [line[2:] for line in shown if line.startswith("? ")]
    assert asked == [VOTES_QUESTION, OFF_TOPIC]
    lines = out.splitlines()
    for question in asked:
        expected = shown[shown.index(f"? {question}") + 1]
        expected = expected.split("[…]", 1)[0].split("…", 1)[0]  # the README cuts long quotes
        assert lines[lines.index(f"? {question}") + 1].startswith(expected)
    assert "? /context 1" in lines


def test_missing_index_is_a_clear_error_not_a_traceback(tmp_path):
    done = run_bot(TELEGRAM_BOT_TOKEN=SECRET_TOKEN, QUOTEBOT_INDEX_DIR=str(tmp_path / "nowhere"))
    assert done.returncode == 1
    logged = done.stdout  # the bot logs to stdout, as a container's log
    assert "no index found" in logged
    assert "python -m index build" in logged
    assert "Traceback" not in done.stderr + done.stdout
    assert "very_secret" not in done.stderr + done.stdout


async def test_bot_process_answers_then_stops_cleanly_on_sigterm(seed_index_dir, tmp_path):
    log_path = tmp_path / "bot.log"
    async with FakeTelegram(token=SECRET_TOKEN) as server:
        with open(log_path, "w") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=ROOT,
                env=bot_env(
                    TELEGRAM_BOT_TOKEN=SECRET_TOKEN,
                    TELEGRAM_BASE_URL=server.base_url,
                    QUOTEBOT_INDEX_DIR=str(seed_index_dir),
                    QUOTEBOT_JOURNAL=str(tmp_path / "journal.sqlite3"),
                    QUOTEBOT_LOG_LEVEL="DEBUG",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
            try:
                await asyncio.wait_for(server.bot_connected.wait(), PROCESS_TIMEOUT)
                await server.wait_for("getUpdates", PROCESS_TIMEOUT)
                update = server.user_message(VOTES_QUESTION)
                reply = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
                assert VOTES_TEXT in visible(reply)
                server.fail_next("sendMessage", status=502)  # logged by the retry, then ok
                update = server.user_message(VOTES_QUESTION, user_id=1002)
                await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert code == 0
        server.assert_no_violations()
    log = log_path.read_text()
    assert "bot stopped" in log
    assert "received SIGTERM" in log
    # The token never reaches a log, not even its secret half; PTB's debug lines that
    # carry the API URL show it redacted.
    assert SECRET_TOKEN not in log and "very_secret" not in log
    assert "[REDACTED]" in log
    # One line per event: every line starts with a timestamp.
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    stray = [line for line in lines if not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert not stray, stray[:5]

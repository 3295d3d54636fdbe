"""The bot under load and faults: 1,000 questions, a flaky Telegram, an outage, a reload.

The real bot (PTB over HTTP, the real index built by the session fixtures, its update
journal on) answers 1,000 questions from 100 users in 10 groups, sent in bursts, while
the fake Bot API — on loopback only — fails requests at random with a fixed seed
(429 flood waits with ``retry_after``, 500/502/503/504, dropped connections; on every
method, getUpdates included), goes down completely for 5 seconds at a random moment,
and an admin sends ``/reload`` in the middle. In a group the bot replies to the
question it answers, so each question's answers can be counted: every question must
get exactly one — none lost, none twice. The run prints answered / lost / duplicated
and the p50 / p99 latency from question to answer (``pytest -s``, or the "quotebot
figures" section at the end of the run). Latencies are reported, never asserted.

The faults are real but kept small (``retry_after`` of 1 s, retry delays from 0.2 s),
and the bot's flood limiter is opened up (``QUOTEBOT_SEND_RATE``) so that the load,
not Telegram's 30 messages a second, sets the pace.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time

import pytest

from tests.bot_fixtures import REPLY_TIMEOUT, answers_by_question, clean_env, running_bot
from tests.fake_telegram import FakeTelegram
from tests.figures import report

SEED = 20240917
USERS = 100
GROUPS = 10
QUESTIONS = 1000
BURSTS = 20
OUTAGE_SECONDS = 5.0
ADMIN = 9001
FINISH_TIMEOUT = 240.0  # a bound on the whole run, far above the ~1 minute it takes
STEMS = (
    "How many votes did",
    "What did they say about",
    "When was",
    "Who condemned",
    "Why did the UN criticise",
    "What happened to",
    "Where were",
    "Which country supported",
    "What is known about",
    "Who welcomed",
)
SUBJECTS = (
    "the 63rd resolution",
    "executions in Iran",
    "political prisoners",
    "the General Assembly vote",
    "Maryam Rajavi",
    "human rights in Iran",
    "the Iranian Resistance",
    "the PMOI / MEK",
    "the death penalty",
    "the Mona Lisa",
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def test_thousand_questions_through_faults_outage_and_reload(quote_index, caplog):
    caplog.set_level(logging.WARNING, logger="bot.delivery")
    rng = random.Random(SEED)
    questions = [f"{stem} {subject}?" for stem in STEMS for subject in SUBJECTS]
    asked_at: dict[tuple[int, int], float] = {}
    outage_burst = rng.randrange(4, BURSTS - 4)
    reload_burst = BURSTS // 2
    async with (
        FakeTelegram() as server,
        running_bot(
            server,
            quote_index,
            admins=str(ADMIN),
            send_rate=0,
            group_send_rate=0,
        ),
    ):
        server.random_faults(SEED, rate_429=0.004, rate_5xx=0.02, rate_drop=0.01, retry_after=1)
        started = time.monotonic()
        per_burst = QUESTIONS // BURSTS
        reload_update = None
        for burst in range(BURSTS):
            if burst == outage_burst:
                server.outage(OUTAGE_SECONDS, status=rng.choice((502, 0)))
            if burst == reload_burst:
                reload_update = server.user_message("/reload", user_id=ADMIN)
            for _ in range(per_burst):
                user = rng.randrange(USERS)
                update = server.user_message(
                    f"/ask {rng.choice(questions)}",
                    chat_type="supergroup",
                    chat_id=-1_001_000_000_200 - user % GROUPS,
                    user_id=10_000 + user,
                )
                message = update["message"]
                asked_at[(message["chat"]["id"], message["message_id"])] = time.time()
            await asyncio.sleep(rng.uniform(1.0, 2.0))  # ~33 questions a second on average

        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINISH_TIMEOUT
        while not set(asked_at) <= set(answers_by_question(server)):
            assert loop.time() < deadline, (
                f"{len(set(asked_at) - set(answers_by_question(server)))} questions "
                f"unanswered after {FINISH_TIMEOUT}s\n{server.dump()}"
            )
            await asyncio.sleep(0.2)
        server.clear_faults()
        await server.wait_idle(quiet=1.0, timeout=60)
        seconds = time.monotonic() - started

        assert reload_update is not None
        admin_said = [m["text"] for m in server.sent_messages(ADMIN)]
        assert any(t.startswith("Index reloaded") for t in admin_said), admin_said

        counts = answers_by_question(server)
        first_answer: dict[tuple[int, int], float] = {}
        for call in server.calls("sendMessage", ok=True):
            replied = call.result.get("reply_to_message")
            if replied:
                key = (call.result["chat"]["id"], replied["message_id"])
                first_answer.setdefault(key, call.time + call.duration)
        latencies = [first_answer[q] - asked_at[q] for q in asked_at if q in first_answer]
        lost = [q for q in asked_at if counts[q] == 0]
        twice = [q for q in asked_at if counts[q] > 1]
        injected = [c for c in server.all_calls if c.injected]
        kinds = {
            "429": sum(c.status == 429 for c in injected),
            "5xx": sum(c.status >= 500 for c in injected),
            "dropped": sum(c.status == 0 for c in injected),
        }
        retried = sum("answer not delivered" in r.getMessage() for r in caplog.records)
        report(
            f"fault suite: {len(asked_at)} questions from {USERS} users in {BURSTS} bursts, "
            f"{len(injected)} requests failed on purpose ({kinds['429']} x 429, "
            f"{kinds['5xx']} x 5xx, {kinds['dropped']} dropped, a {OUTAGE_SECONDS:.0f} s outage "
            f"at burst {outage_burst}), /reload at burst {reload_burst}: "
            f"answered {len(asked_at) - len(lost)}, lost {len(lost)}, duplicated {len(twice)}; "
            f"latency p50 {statistics.median(latencies):.2f} s, "
            f"p99 {percentile(latencies, 0.99):.2f} s; {retried} answers retried later from the "
            f"journal; {seconds:.0f} s in all"
        )
        assert not lost and not twice
        assert kinds["429"] and kinds["5xx"] and kinds["dropped"], kinds
        server.assert_no_violations()
        await asyncio.wait_for(server.wait_idle(quiet=0.2, timeout=REPLY_TIMEOUT), REPLY_TIMEOUT)

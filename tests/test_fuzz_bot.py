"""Fuzzing (hypothesis) the bot's formatter directly and the real bot end to end.

Inputs: unicode from every plane, right-to-left text and direction marks, control
characters, zero-width characters, HTML and Markdown metacharacters, empty and
10,000-character strings. What must hold:

* the formatter: every message it packs is HTML that Telegram's rules accept (the
  fake server's strict parser), shows exactly the plain text, stays within 4,096
  UTF-16 units and 100 entities, and every button's callback data is 1-64 bytes;
* the bot (real PTB over HTTP to the fake Bot API on loopback, real index): every
  question gets a reply, every message passes the fake server's checks, nothing
  crashes (no apology, no error logged), and a question with no answer — empty,
  too long, gibberish — gets one clear line.

Example counts are bounded and the runs derandomized, so the suite stays fast and
reproducible; the number of examples tried is printed (tests/figures.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.app import BotRunner
from bot.formatting import (
    APOLOGY,
    MAX_ENTITIES,
    MAX_MESSAGE_UNITS,
    answer_groups,
    context_groups,
    pack,
    sources_groups,
    text_groups,
)
from bot.keyboards import answer_keyboard, encode_more
from bot.service import QuoteService
from index import Context, Quote, QuoteIndex, Source
from tests.bot_fixtures import check_message_rules, clean_env, make_settings, sent_since
from tests.fake_telegram import Call, FakeTelegram, FakeTelegramThread, parse_html, utf16_len
from tests.figures import report

FORMATTER_EXAMPLES = 200
BOT_EXAMPLES = 150
REPLY_TIMEOUT = 30.0
KNOWN_COMMANDS = {"/start", "/help", "/sources", "/about", "/stats", "/reload", "/ask"}

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
RTL = "אבגדהשלוםمرحبابالعالم\u200f\u202b\u202e\u2067\u2069"
CONTROL = "".join(chr(c) for c in range(32)) + "\x7f\x85\u2028\u2029"
META = "<>&\"';*_`[]()~#+-=|{}.!\\/ @"
SPECIAL = ZERO_WIDTH + RTL + CONTROL + META

characters = st.one_of(
    st.characters(exclude_categories=("Cs",)),  # any code point a JSON string can carry
    st.sampled_from(SPECIAL),
)
texts = st.text(characters, max_size=400)
LONG = st.sampled_from(
    [
        "a" * 10_000,
        "<b>" * 3_334,
        "*_`[" * 2_500,
        "😀" * 5_000,  # 10,000 UTF-16 units
        "שלום " * 2_000,
        "\u200b" * 10_000,
        ("word " * 2_000).strip(),
    ]
)
texts_with_long = st.one_of(texts, LONG)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


# ----------------------------------------------------------------------------- formatter
urls = st.one_of(
    st.none(),
    texts,
    st.builds(
        lambda host, path: f"https://{host}.example/{path}", st.text("abc-.", min_size=1), texts
    ),
    st.sampled_from(["javascript:alert(1)", "http://x", 'https://a.b/"><b>', "ftp://a.b/c"]),
)
sources = st.builds(
    Source,
    title=texts_with_long,
    publisher=st.one_of(st.none(), texts),
    date=st.one_of(st.none(), texts),
    url=urls,
    path=st.just("corpus/x.md"),
)


@st.composite
def quotes(draw: Callable[..., Any]) -> Quote:
    text = draw(texts_with_long)
    spans = draw(
        st.lists(
            st.tuples(st.integers(-5, len(text) + 5), st.integers(-5, len(text) + 5)),
            max_size=60,
        )
    )
    return Quote(
        text=text,
        highlights=(),
        spans=tuple(spans),
        score=0.5,
        sources=tuple(draw(st.lists(sources, min_size=1, max_size=3))),
        ref=draw(st.text(characters, min_size=1, max_size=70)),
    )


def check_packed(groups: list[Any]) -> int:
    """Every message Telegram-valid; the number of messages."""
    messages = pack(groups)
    for message in messages:
        shown, entities = parse_html(message.html())  # raises on anything Telegram rejects
        assert shown == message.plain()
        assert shown.strip(), "an empty message"
        assert utf16_len(shown) <= MAX_MESSAGE_UNITS
        assert len(entities) <= MAX_ENTITIES
    return len(messages)


def check_keyboard(markup: Any) -> None:
    if markup is None:
        return
    for row in markup.inline_keyboard:
        for button in row:
            assert 1 <= len(button.callback_data.encode()) <= 64


def test_formatter_keeps_every_message_within_telegram_rules():
    tried = []

    @settings(
        max_examples=FORMATTER_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        page=st.lists(quotes(), min_size=1, max_size=5),
        first=st.one_of(st.none(), st.integers(1, 50)),
        passages=st.lists(texts_with_long, min_size=1, max_size=4),
        words=st.lists(texts_with_long, max_size=3),
        listed=st.lists(sources, max_size=30),
    )
    @example(
        page=[Quote("", (), ((0, 5),), 0.5, (Source("", None, None, None, "p"),), "r")],
        first=None,
        passages=["", "\u200b"],
        words=[""],
        listed=[],
    )
    def check(page, first, passages, words, listed):
        tried.append(1)
        check_packed(answer_groups(page, first))
        check_keyboard(answer_keyboard(page, first, encode_more("AbCdEfGh", 3)))
        source = page[0].sources[0]
        context = Context(source, tuple(passages), len(passages) // 2, page[0].ref)
        check_packed(context_groups(context))
        check_packed(text_groups(*words))
        check_packed(sources_groups(listed))

    check()
    report(f"fuzz (formatter): {len(tried)} examples, every message within Telegram's rules")


# ----------------------------------------------------------------------------- the bot
class BotInThread:
    """The real bot and the fake Bot API on one event loop in a background thread, so
    hypothesis (synchronous) can drive it one question at a time."""

    def __init__(self, index: QuoteIndex) -> None:
        self.index = index
        self.fake = FakeTelegramThread()
        self.scratch = tempfile.TemporaryDirectory(prefix="quotebot-fuzz-")
        self.runner: BotRunner | None = None

    def __enter__(self) -> BotInThread:
        self.fake.__enter__()

        async def start(server: FakeTelegram) -> BotRunner:
            journal = Path(self.scratch.name) / "journal.sqlite3"
            # No flood limit towards a fake on loopback (20 a minute per group would pace this).
            settings = make_settings(
                server, self.index.index_dir, journal=journal, send_rate=0, group_send_rate=0
            )
            runner = BotRunner(settings, QuoteService(self.index))  # built on the bot's loop
            await runner.start()
            return runner

        self.runner = self.fake.run(start, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.runner is not None:
                runner = self.runner
                self.fake.run(lambda _server: runner.stop(), timeout=60)
        finally:
            self.fake.__exit__(*exc)
            self.scratch.cleanup()

    @property
    def server(self) -> FakeTelegram:
        assert self.fake.server is not None
        return self.fake.server

    def send(self, text: str, **where: Any) -> list[Call]:
        """Send ``text`` as a user; every message the bot sent in reply, once it is done."""
        runner = self.runner
        assert runner is not None and runner.delivery is not None
        journal = runner.delivery.journal

        async def exchange(server: FakeTelegram) -> list[Call]:
            mark = server.mark()
            update = server.user_message(text, **where)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + REPLY_TIMEOUT
            while True:  # handled when the journal marks the update done
                progress = journal.progress(update["update_id"])
                if progress is not None and progress.done:
                    break
                if loop.time() > deadline:
                    raise TimeoutError(f"no reply to {text[:80]!r}\n{server.dump()}")
                await asyncio.sleep(0.01)
            return sent_since(server, mark, update["message"]["chat"]["id"])

        return self.fake.run(exchange, timeout=REPLY_TIMEOUT + 10)


def test_any_question_gets_a_valid_reply_and_bad_ones_one_clear_line(quote_index, caplog):
    caplog.set_level(logging.ERROR)
    tried: list[str] = []
    one_liners = 0

    with BotInThread(quote_index) as bot:

        @settings(
            max_examples=BOT_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(question=texts_with_long, in_group=st.booleans())
        @example(question="", in_group=True)
        @example(question=" \t\n ", in_group=False)
        @example(question="\x00\x01\x1b[31m", in_group=False)
        @example(question="\u200b\u200c\u200d", in_group=False)
        @example(question="a" * 10_000, in_group=False)
        @example(question="😀" * 5_000, in_group=True)
        @example(question="<script>alert('x')</script> & <b>votes</b>", in_group=False)
        @example(question="*how* _many_ `votes` [did](http://x) ~it~ ||get||?", in_group=True)
        @example(question="\u202eכמה קולות קיבלה ההחלטה? how many votes", in_group=False)
        @example(question="how many votes did the 63rd resolution get?\u200b", in_group=True)
        def check(question: str, in_group: bool) -> None:
            nonlocal one_liners
            tried.append(question)
            if in_group:
                replies = bot.send(f"/ask {question}", chat_type="supergroup", user_id=3001)
            else:
                replies = bot.send(question, user_id=3002)
            assert replies, f"no reply to {question[:80]!r}"
            for call in replies:
                check_message_rules(call)
                assert call.result["text"] != APOLOGY, f"crashed on {question[:80]!r}"
            quoted = any(
                e["type"] == "blockquote" for c in replies for e in c.result.get("entities", [])
            )
            command = question.strip().split(" ", 1)[0].split("@", 1)[0].lower()
            if not quoted and not (not in_group and command in KNOWN_COMMANDS):
                texts = [c.result["text"] for c in replies]
                assert len(texts) == 1 and "\n" not in texts[0], texts
                one_liners += 1
            assert bot.server.violations == []

        check()
        bot.server.assert_no_violations()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    report(
        f"fuzz (bot): {len(tried)} questions through the real bot, 0 crashes, every message "
        f"within Telegram's rules; {one_liners} unanswerable ones got one clear line"
    )

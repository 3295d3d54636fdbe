"""The real bot over real HTTP (polling) against the fake Telegram Bot API.

Each test starts the bot's real PTB Application (``bot.app.BotRunner``) pointed at a
``FakeTelegram`` on 127.0.0.1, injects what a user would do and checks what the bot
sent — including that the fake, which validates like Telegram, accepted all of it.
Nothing is mocked: the index is real, PTB's HTTP layer is real.
"""

from __future__ import annotations

import asyncio
import html

import pytest

from bot.formatting import APOLOGY, EXPIRED_BUTTON, NOT_ALLOWED, PASSAGE_GONE
from tests.bot_fixtures import (
    BOT_USERNAME,
    MANY_QUESTION,
    OFF_TOPIC,
    REPLY_TIMEOUT,
    VOTES_QUESTION,
    VOTES_TEXT,
    ask,
    callback_datas,
    check_message_rules,
    clean_env,
    converse,
    entity_types,
    running_bot,
    sent_since,
    visible,
)
from tests.fake_telegram import FakeTelegram


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


@pytest.fixture
async def server():
    async with FakeTelegram() as fake:
        yield fake
        fake.assert_no_violations()


# ----------------------------------------------------------------------------- chats
async def test_private_question_gets_quote_with_source(server, quote_index):
    async with running_bot(server, quote_index):
        commands = {c["command"] for cmds in server.commands.values() for c in cmds}
        assert {"start", "help", "sources", "about", "ask"} <= commands

        reply = await ask(server, VOTES_QUESTION)
        assert reply.method == "sendMessage"
        raw = reply.params["text"]
        assert reply.params["parse_mode"] == "HTML"
        assert "<blockquote>" in raw and "<b>" in raw
        assert VOTES_TEXT in visible(reply)
        assert "85 votes" in visible(reply)
        assert "Iran Focus, 2016-12-20" in visible(reply)
        assert {"blockquote", "bold"} <= set(entity_types(reply))
        # The answering sentence is the bold one.
        text = visible(reply)
        bolds = [
            text[e["offset"] : e["offset"] + e["length"]]
            for e in reply.result["entities"]
            if e["type"] == "bold"
        ]
        assert any("85 votes" in b for b in bolds)
        assert any(d.startswith("ctx:") for d in callback_datas(reply))
        check_message_rules(reply)
        # "typing" was shown while searching, before the answer went out.
        typing = server.calls("sendChatAction", ok=True)
        assert typing and typing[0].params["action"] == "typing"
        assert typing[0].index < reply.index


async def test_not_found_points_to_sources_and_help(server, quote_index):
    async with running_bot(server, quote_index):
        reply = await ask(server, OFF_TOPIC)
        text = visible(reply)
        assert "/sources" in text and "/help" in text
        assert "blockquote" not in entity_types(reply)
        assert not callback_datas(reply)


async def test_non_text_empty_and_long_questions_get_clear_replies(server, quote_index):
    async with running_bot(server, quote_index):
        update = server.user_sticker()
        reply = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        assert "only read text" in visible(reply)

        reply = await ask(server, "why? " * 250)
        assert "too long" in visible(reply)

        reply = await ask(server, "/ask")
        assert "/ask" in visible(reply)

        reply = await ask(server, "/frobnicate")
        assert "/help" in visible(reply)


async def test_commands(server, quote_index):
    async with running_bot(server, quote_index, admins="1001"):
        start = await ask(server, "/start")
        assert "quoting" in visible(start)

        help_reply = await ask(server, "/help")
        text = visible(help_reply)
        assert "/sources" in text and "/ask" in text
        # Examples come from the corpus (article titles), not made up.
        titles = [s.title for s in quote_index.articles()]
        assert any(t.rstrip("…")[:40] in text for t in titles)
        assert "/reload" in text  # 1001 is an admin

        sources = await ask(server, "/sources")
        text = visible(sources)
        assert "Iran Focus, 2016-12-20" in text
        assert "PMOI / MEK Iran" in text
        assert text.count("• ") == len(titles)

        about = await ask(server, "/about")
        assert "verbatim" in visible(about)

        stats = await ask(server, "/stats")
        assert quote_index.build_id in visible(stats)

        refused = await ask(server, "/stats", user_id=2002)
        assert "only for the bot's admins" in visible(refused)
        refused = await ask(server, "/reload", user_id=2002)
        assert "only for the bot's admins" in visible(refused)
        help_other = await ask(server, "/help", user_id=2002)
        assert "/reload" not in visible(help_other)
        for call in server.calls("sendMessage"):
            check_message_rules(call)


# ----------------------------------------------------------------------------- buttons
async def test_context_button_shows_surrounding_paragraphs(server, quote_index):
    async with running_bot(server, quote_index):
        reply = await ask(server, VOTES_QUESTION)
        ctx = next(d for d in callback_datas(reply) if d.startswith("ctx:"))
        press = server.press_button(reply, ctx)
        shown = await server.wait_for_reply(press, timeout=REPLY_TIMEOUT)
        assert shown.method == "sendMessage"
        assert VOTES_TEXT in visible(shown)
        assert "Context" in visible(shown)
        assert entity_types(shown).count("blockquote") >= 2  # the quote and a neighbour
        await server.wait_idle()
        answered = server.callback_answers[press["callback_query"]["id"]]
        assert not answered.get("text")


async def test_more_button_pages_through_quotes(server, quote_index):
    async with running_bot(server, quote_index, top_k=1):
        first = await ask(server, MANY_QUESTION)
        assert visible(first).count("[1]") >= 1
        more = [d for d in callback_datas(first) if d.startswith("more:")]
        assert more, "a one-quote page of a three-quote answer offers More"
        assert all(len(d.encode()) <= 64 for d in callback_datas(first))

        mark = server.mark()
        press = server.press_button(first, more[0])
        await server.wait_for(
            lambda c: (
                c.method == "answerCallbackQuery"
                and c.params["callback_query_id"] == press["callback_query"]["id"]
            ),
            REPLY_TIMEOUT,
        )
        second = await server.wait_for("sendMessage", REPLY_TIMEOUT, since=mark)
        assert "[2]" in visible(second)
        assert visible(second) != visible(first)
        await server.wait_idle()
        # The pressed message lost its More button; the new page has its own.
        old = next(
            m
            for m in server.bot_messages(first.result["chat"]["id"])
            if m["message_id"] == first.result["message_id"]
        )
        assert not any(
            b["callback_data"].startswith("more:")
            for row in old.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
        )


async def test_stale_and_unknown_buttons_answer_sensibly(server, quote_index):
    async with running_bot(server, quote_index, top_k=1):
        reply = await ask(server, MANY_QUESTION)
        more = next(d for d in callback_datas(reply) if d.startswith("more:"))

    # A restart forgets the question tokens: the old More button says it expired.
    async with running_bot(server, quote_index, top_k=1):
        press = server.press_button(reply, more)
        await server.wait_for_reply(press, methods=("answerCallbackQuery",))
        assert server.callback_answers[press["callback_query"]["id"]]["text"] == EXPIRED_BUTTON

        garbage = server.press_button(reply, "more:nosuchtoken:3", strict=False)
        await server.wait_for_reply(garbage, methods=("answerCallbackQuery",))
        assert server.callback_answers[garbage["callback_query"]["id"]]["text"] == EXPIRED_BUTTON

        unknown = server.press_button(reply, "something-else", strict=False)
        await server.wait_for_reply(unknown, methods=("answerCallbackQuery",))
        assert server.callback_answers[unknown["callback_query"]["id"]]["text"] == EXPIRED_BUTTON

        gone = server.press_button(reply, "ctx:0000000000:123", strict=False)
        await server.wait_for_reply(gone, methods=("answerCallbackQuery",))
        assert server.callback_answers[gone["callback_query"]["id"]]["text"] == PASSAGE_GONE

        # A Context button survives the restart: refs are stable while the article is.
        ctx = next(d for d in callback_datas(reply) if d.startswith("ctx:"))
        press = server.press_button(reply, ctx)
        shown = await server.wait_for_reply(press, timeout=REPLY_TIMEOUT)
        assert VOTES_TEXT in visible(shown)


# ----------------------------------------------------------------------------- groups
async def test_group_answers_only_what_is_addressed_to_it(quote_index):
    # Privacy mode off, so the bot really receives the chatter and must ignore it itself.
    async with FakeTelegram(privacy_mode=False) as server, running_bot(server, quote_index):
        group = dict(chat_type="group", chat_id=-200_001)
        for text in ("hello everyone", "how many votes did it get?", "/help@other_bot"):
            server.user_message(text, **group)
        await asyncio.sleep(0.5)
        await server.wait_idle()
        assert not server.calls("sendMessage"), server.dump()

        asked = await ask(server, f"/ask {VOTES_QUESTION}", **group)
        assert VOTES_TEXT in visible(asked)
        assert asked.result["reply_to_message"]["text"].startswith("/ask")

        addressed = await ask(server, f"/ask@{BOT_USERNAME} {VOTES_QUESTION}", **group)
        assert VOTES_TEXT in visible(addressed)

        mention = await ask(server, f"@{BOT_USERNAME} {VOTES_QUESTION}", user_id=1002, **group)
        assert VOTES_TEXT in visible(mention)

        reply = await ask(
            server,
            "and how many votes did the 63rd resolution get?",
            reply_to_bot_message_id=asked.result["message_id"],
            **group,
        )
        assert VOTES_TEXT in visible(reply)

        bare = await ask(server, f"@{BOT_USERNAME}", **group)
        assert "question" in visible(bare).lower()
        server.assert_no_violations()


async def test_group_with_privacy_mode_gets_commands_and_replies(server, quote_index):
    async with running_bot(server, quote_index):
        group = dict(chat_type="supergroup")
        asked = await ask(server, f"/ask {VOTES_QUESTION}", **group)
        assert VOTES_TEXT in visible(asked)
        followup = await ask(
            server, OFF_TOPIC, reply_to_bot_message_id=asked.result["message_id"], **group
        )
        assert "/sources" in visible(followup)


# ----------------------------------------------------------------------------- inline mode
async def test_inline_mode_offers_quotes(server, quote_index):
    async with running_bot(server, quote_index, inline_results=50):
        update = server.inline_query(VOTES_QUESTION)
        call = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        results = call.params["results"]
        assert 1 <= len(results) <= 50
        first = results[0]
        assert first["type"] == "article"
        assert VOTES_TEXT[:20] in html.unescape(first["input_message_content"]["message_text"])
        assert "<blockquote>" in first["input_message_content"]["message_text"]
        assert "Iran Focus" in first["description"]
        assert len({r["id"] for r in results}) == len(results)

        empty = server.inline_query("   ")
        call = await server.wait_for_reply(empty, timeout=REPLY_TIMEOUT)
        assert call.params["results"] == []

        off = server.inline_query(OFF_TOPIC)
        call = await server.wait_for_reply(off, timeout=REPLY_TIMEOUT)
        assert call.params["results"] == []


# ----------------------------------------------------------------------------- limits, access
async def test_rate_limit_is_polite_and_said_once(server, quote_index):
    async with running_bot(server, quote_index, rate_limit_per_minute=2):
        for _ in range(2):
            reply = await ask(server, VOTES_QUESTION)
            assert VOTES_TEXT in visible(reply)
        limited = await ask(server, VOTES_QUESTION)
        assert "faster than I can keep up" in visible(limited)
        mark = server.mark()
        server.user_message(VOTES_QUESTION)
        await asyncio.sleep(0.5)
        await server.wait_idle()
        assert not sent_since(server, mark, 1001), "the limit is said once, not per message"
        # Another user is not affected.
        other = await ask(server, VOTES_QUESTION, user_id=1003)
        assert VOTES_TEXT in visible(other)


async def test_allowlist_refuses_messages_buttons_and_inline(server, quote_index):
    async with running_bot(server, quote_index, allowed_users="1001"):
        allowed = await ask(server, VOTES_QUESTION)
        assert VOTES_TEXT in visible(allowed)

        refused = await ask(server, VOTES_QUESTION, user_id=2002)
        assert visible(refused) == NOT_ALLOWED

        inline = server.inline_query(VOTES_QUESTION, user_id=2002)
        call = await server.wait_for_reply(inline, timeout=REPLY_TIMEOUT)
        assert call.params["results"] == []

        ctx = next(d for d in callback_datas(allowed) if d.startswith("ctx:"))
        press = server.press_button(allowed, ctx, user_id=2002)
        await server.wait_for_reply(press, methods=("answerCallbackQuery",))
        assert server.callback_answers[press["callback_query"]["id"]]["text"] == NOT_ALLOWED

        # In a group that is not allowed, a stranger's /ask gets no answer at all.
        mark = server.mark()
        server.user_message(f"/ask {VOTES_QUESTION}", chat_type="group", user_id=2002)
        await asyncio.sleep(0.5)
        await server.wait_idle()
        assert not [c for c in server.calls("sendMessage") if c.index >= mark]


async def test_allowed_chat_lets_its_members_ask(server, quote_index):
    async with running_bot(server, quote_index, allowed_chats="-200001"):
        reply = await ask(server, f"/ask {VOTES_QUESTION}", chat_type="group", user_id=3003)
        assert VOTES_TEXT in visible(reply)


# ----------------------------------------------------------------------------- failures
async def test_flood_wait_is_honoured_and_answer_delivered(server, quote_index):
    async with running_bot(server, quote_index):
        server.fail_next("sendMessage", status=429, retry_after=1)
        reply = await ask(server, VOTES_QUESTION)
        assert VOTES_TEXT in visible(reply)
        flood = [c for c in server.calls("sendMessage") if c.status == 429]
        assert len(flood) == 1
        assert reply.time - flood[0].time >= 1.0, "retried before retry_after elapsed"


async def test_outage_recovers_and_answer_arrives(server, quote_index):
    async with running_bot(server, quote_index):
        server.fail_next("sendMessage", status=502, times=2)
        server.fail_next("sendMessage", status=0, times=1)  # a dropped connection
        reply = await ask(server, VOTES_QUESTION)
        assert VOTES_TEXT in visible(reply)
        failed = [c for c in server.calls("sendMessage") if c.injected]
        assert len(failed) == 3

        # A longer outage: 1 try + 4 retries (QUOTEBOT_NETWORK_RETRIES) all fail, then
        # Telegram is back. The question stays in the journal and is answered a little later.
        server.fail_next("sendMessage", status=503, times=5)
        update = server.user_message(VOTES_QUESTION, user_id=1004)
        late = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        assert VOTES_TEXT in visible(late)
        assert len(sent_since(server, 0, 1004)) == 1
        later = await ask(server, VOTES_QUESTION, user_id=1005)
        assert VOTES_TEXT in visible(later)


async def test_outage_without_journal_apologises(server, quote_index):
    async with running_bot(server, quote_index, journal=None):
        # Without a journal nothing can be retried later: the bot says sorry once it can.
        server.fail_next("sendMessage", status=503, times=5)
        update = server.user_message(VOTES_QUESTION, user_id=1004)
        apology = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        assert visible(apology) == APOLOGY
        later = await ask(server, VOTES_QUESTION, user_id=1005)
        assert VOTES_TEXT in visible(later)


async def test_html_rejected_by_telegram_is_resent_as_plain_text(server, quote_index):
    async with running_bot(server, quote_index):
        server.fail_next(
            "sendMessage", status=400, description="Bad Request: can't parse entities: test"
        )
        reply = await ask(server, VOTES_QUESTION)
        assert "parse_mode" not in reply.params
        assert VOTES_TEXT in visible(reply)
        assert "<b>" not in reply.params["text"]


async def test_blocked_user_does_not_stop_the_bot(quote_index):
    async with FakeTelegram() as server, running_bot(server, quote_index):
        server.chat(user_id=4004)
        server.forbid_chat(4004)
        server.user_message(VOTES_QUESTION, user_id=4004)
        await server.wait_for(
            lambda c: c.method == "sendMessage" and c.status == 403,
            REPLY_TIMEOUT,
            include_failed=True,
        )
        reply = await ask(server, VOTES_QUESTION, user_id=1006)
        assert VOTES_TEXT in visible(reply)
        # The only refused calls are the ones to the user who blocked the bot.
        assert {c.params["chat_id"] for c in server.violations} == {4004}


async def test_questions_from_many_users_are_answered_concurrently(server, quote_index):
    async with running_bot(server, quote_index):
        marks = server.mark()
        updates = [server.user_message(VOTES_QUESTION, user_id=5000 + i) for i in range(8)]
        for update in updates:
            await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        sent = [c for c in server.calls("sendMessage", ok=True) if c.index >= marks]
        assert {c.result["chat"]["id"] for c in sent} == {5000 + i for i in range(8)}
        assert all(VOTES_TEXT in visible(c) for c in sent)
        convo = await converse(server, "/about", user_id=5000)
        assert len(convo) == 1
